"""Options shared by several subcommands and by the pytest plugin, each defined once.

One option, one meaning: ``SHARED_OPTIONS`` names every option more than one subcommand takes, with the one meaning
its help starts with in each of them (the README's table "Options shared by several subcommands" quotes the same
text, and tests/test_cli_vocabulary.py holds the parsers, the table and this list together). A builder per option
(``add_header``, ``add_deadline``...) is the only place it is defined; a subcommand adds at most a detail after the
meaning (its own default, what it does with the value).

Old spellings stay for one release as hidden aliases (``DEPRECATED``): they still work and print one note saying
what to use instead.

Builders take an ``add(name, **kwargs)`` callable — argparse's ``add_argument`` (of a parser or an argument group)
or pytest's ``group.addoption`` — so every front end spells and documents the options the same way. The pytest
plugin passes ``prefix="conformance-"`` so its names cannot clash with other plugins (pytest-html,
pytest-benchmark, pytest-xdist).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.measure.tokens import METHODS as TOKEN_METHODS
from harness.model import CAPTURE_MAX_BYTES, Limits

# Body cap of one capture in a run: the cap every capture has (harness.model.CAPTURE_MAX_BYTES, with the reason),
# kept under this name for the callers that import it. All the captures of a run also share one byte budget
# (Limits.budget_bytes).
RUN_MAX_BYTES = CAPTURE_MAX_BYTES
DEFAULT_DEADLINE_S = 60.0

Add = Callable[..., Any]


@dataclass(frozen=True)
class SharedOption:
    """An option several subcommands take: its spellings, its one meaning and who takes it."""

    flags: tuple[str, ...]
    meaning: str
    commands: tuple[str, ...]


SHARED_OPTIONS: tuple[SharedOption, ...] = (
    SharedOption(("--profile",), "the profile: a built-in profile's name or the path of a TOML file",
                 ("run", "check", "grade", "bench")),
    SharedOption(("-H", "--header"), "an extra request header 'NAME: VALUE', repeatable "
                 "(e.g. -H 'Authorization: Bearer ...')", ("run", "grade", "bench")),
    SharedOption(("--set",), "override one profile setting KEY=VALUE, repeatable (e.g. --set timing.ttft_ms=1500)",
                 ("run", "check", "grade", "bench")),
    SharedOption(("--dialect",), "the request body dialect, or auto: the profile's, then the other of prompt and "
                 "openai when the first request is refused with a 4xx", ("run", "grade", "bench")),
    SharedOption(("--model",), "the model name: the openai dialect's model field", ("run", "serve", "grade", "bench")),
    SharedOption(("--max-tokens",), "ask for at most N tokens (sent as the dialect's max_tokens), so a server that "
                 "never emits an end token stops", ("run", "grade", "bench")),
    SharedOption(("--token-method",), f"how output tokens are counted: {', '.join(TOKEN_METHODS)}; the same as "
                 "--set token_method=METHOD (and wins over it)", ("run", "check", "grade", "bench")),
    SharedOption(("--deadline",), "seconds the whole run against one endpoint may take, all its requests and the "
                 "evaluation included (nothing waits past it; what it cut short is reported)", ("run", "grade")),
    SharedOption(("--json",), "write the JSON output to PATH, or to stdout with '-' (everything else then goes to "
                 "stderr)", ("run", "check", "grade", "bench")),
    SharedOption(("--html",), "write a self-contained HTML report to PATH (missing directories are created)",
                 ("run", "check", "bench", "report")),
    SharedOption(("--quiet",), "print only what needs attention: no progress, nothing that passed",
                 ("run", "check", "grade")),
    SharedOption(("--concurrency",), "how many are kept in flight at once", ("grade", "bench")),
    SharedOption(("--fault",), "a fault mode of the reference server (the names: serve --list-faults)",
                 ("run", "serve", "bench")),
    SharedOption(("--ray",), "run the work on a Ray cluster: auto (the cluster in RAY_ADDRESS, else a local "
                 "Ray started for this command) or HOST:PORT of a running one; needs pip install "
                 "'streamconform[ray]'", ("grade", "bench")),
    SharedOption(("--workers",), "how many worker processes share the load", ("serve", "bench")),
    SharedOption(("--processes",), "split the work over N local processes, one event loop each (at most one per "
                 "CPU); not with --ray", ("grade", "bench")),
    SharedOption(("--chromium",), "the Chromium the browser client runs (default: $STREAMCONFORM_CHROMIUM, then "
                 "chromium, chromium-browser or google-chrome on PATH)", ("run", "clients")),
)
_SHARED_BY_FLAG = {flag: option for option in SHARED_OPTIONS for flag in option.flags}


@dataclass(frozen=True)
class Deprecated:
    """An old spelling kept as a hidden alias for one release."""

    old: str
    new: str
    commands: tuple[str, ...]


DEPRECATED: tuple[Deprecated, ...] = (
    Deprecated("--timeout", "--deadline", ("run",)),
    Deprecated("--timeout", "--request-timeout", ("bench",)),
    Deprecated("--html", "--submission-reports", ("grade",)),
)


def shared_help(flag: str, detail: str | None = None) -> str:
    """An option's help: its one meaning, then what this subcommand adds (a default, what it does with it)."""
    meaning = _SHARED_BY_FLAG[flag].meaning
    return f"{meaning}; {detail}" if detail else meaning


class DeprecatedAlias(argparse.Action):
    """An old spelling: hidden from --help, stores into the new option's dest and says once what to use instead
    (on stderr, so a `--json -` document on stdout stays clean)."""

    def __init__(self, option_strings: list[str], dest: str, *, replacement: str, **kwargs: Any) -> None:
        self.replacement = replacement
        kwargs.setdefault("default", argparse.SUPPRESS)  # the documented option sets the default
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        # Once per parser: pytest parses its command line twice, and a repeated option is one mistake.
        noted = vars(parser).setdefault("_streamconform_deprecations_noted", set())
        if option_string not in noted:
            noted.add(option_string)
            print(f"streamconform: warning: {option_string} is deprecated and will be removed in the next release; "
                  f"use {self.replacement} (same meaning)", file=sys.stderr)


def add_deprecated(add: Add, old: str, new: str, dest: str, *, flag: bool = False, **kwargs: Any) -> None:
    """Keep ``old`` working as ``new`` for one release. ``flag``: an option that takes no value."""
    if flag:
        kwargs.update(nargs=0, const=True)
    add(old, dest=dest, action=DeprecatedAlias, replacement=new, **kwargs)


def _with(detail: str | None, default: str | None) -> str | None:
    """A detail with the subcommand's default appended."""
    parts = [p for p in (detail, f"default: {default}" if default else None) if p]
    return "; ".join(parts) or None


def add_profile(add: Add, *, default: str | None = "tds", default_text: str | None = None,
                detail: str | None = None) -> None:
    add("--profile", default=default, metavar="NAME|PATH",
        help=shared_help("--profile", _with(detail, default_text or default)))


def add_header(add: Add, prefix: str = "", detail: str | None = None) -> None:
    d = prefix.replace("-", "_")
    names = ([] if prefix else ["-H"]) + [f"--{prefix}header"]  # pytest reserves short options
    add(*names, dest=f"{d}headers", action="append", default=[], metavar="'NAME: VALUE'",
        help=shared_help("--header", detail))


def add_set(add: Add, prefix: str = "", detail: str | None = None) -> None:
    d = prefix.replace("-", "_")
    add(f"--{prefix}set", dest=f"{d}overrides", action="append", default=[], metavar="KEY=VALUE",
        help=shared_help("--set", detail))


def add_dialect(add: Add, prefix: str = "", detail: str | None = None) -> None:
    from harness.capture.request import (
        DIALECTS,  # the dialects requests can be built in: each one is a choice
    )

    d = prefix.replace("-", "_")
    add(f"--{prefix}dialect", dest=f"{d}dialect", choices=[*DIALECTS, "auto"], default=None,
        help=shared_help("--dialect", _with(detail, "the profile's")))


def add_model(add: Add, prefix: str = "", detail: str = "sent in every openai-dialect request; default: the "
              "profile's request.model", **kwargs: Any) -> None:
    d = prefix.replace("-", "_")
    kwargs.setdefault("default", None)
    add(f"--{prefix}model", dest=f"{d}model", metavar="NAME", help=shared_help("--model", detail), **kwargs)


def add_max_tokens(add: Add, prefix: str = "", detail: str | None = None) -> None:
    d = prefix.replace("-", "_")
    add(f"--{prefix}max-tokens", dest=f"{d}max_tokens", type=max_tokens_arg, default=None, metavar="N",
        help=shared_help("--max-tokens", detail))


def add_token_method(add: Add, detail: str | None = None) -> None:
    add("--token-method", dest="token_method", choices=list(TOKEN_METHODS), default=None, metavar="METHOD",
        help=shared_help("--token-method", _with(detail, "the profile's")))


def add_deadline(add: Add, prefix: str = "", detail: str | None = None) -> None:
    """--deadline, and --timeout as its old spelling (run called the whole run's deadline --timeout)."""
    d = prefix.replace("-", "_")
    add(f"--{prefix}deadline", dest=f"{d}deadline", type=float, default=DEFAULT_DEADLINE_S, metavar="SECONDS",
        help=shared_help("--deadline", _with(detail, f"{DEFAULT_DEADLINE_S:g}")))
    add_deprecated(add, f"--{prefix}timeout", f"--{prefix}deadline", f"{d}deadline", type=float, metavar="SECONDS")


def add_json(add: Add, detail: str) -> None:
    add("--json", dest="json_path", default=None, metavar="PATH|-", help=shared_help("--json", detail))


def add_html(add: Add, detail: str | None = None, metavar: str = "PATH") -> None:
    add("--html", dest="html_path", default=None, metavar=metavar, help=shared_help("--html", detail))


def add_quiet(add: Add, detail: str) -> None:
    add("--quiet", action="store_true", help=shared_help("--quiet", detail))


def add_concurrency(add: Add, detail: str, **kwargs: Any) -> None:
    """grade: one number; bench: a list (one level each). The same idea, requests in flight at once."""
    add("--concurrency", help=shared_help("--concurrency", detail), **kwargs)


def add_fault(add: Add, detail: str, **kwargs: Any) -> None:
    kwargs.setdefault("default", None)
    add("--fault", metavar="NAME", help=shared_help("--fault", detail), **kwargs)


def add_ray(add: Add, detail: str) -> None:
    add("--ray", default=None, metavar="auto|HOST:PORT", help=shared_help("--ray", detail))


def add_workers(add: Add, detail: str, **kwargs: Any) -> None:
    """serve: uvicorn processes; bench: Ray actors. The same idea, processes that split the work."""
    add("--workers", metavar="N", help=shared_help("--workers", detail), **kwargs)


def add_processes(add: Add, detail: str) -> None:
    """grade: submissions over local processes; bench: each level's load. The same idea as --ray, on one machine."""
    add("--processes", type=int, default=None, metavar="N", help=shared_help("--processes", detail))


def check_processes(processes: int | None, ray: Any) -> None:
    """Exit 2 before any work for a count this machine cannot run, or --processes with --ray."""
    if processes is None:
        return
    if ray:
        raise ConfigError("--processes splits the work on this machine; --ray splits it over a cluster: not both")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not 1 <= processes <= cpus:
        raise ConfigError(f"--processes must be between 1 and the {cpus} CPU(s) this machine lets the command use "
                          "(two loops sharing a core would time their streams late)")


def add_run_options(add: Add, prefix: str = "") -> None:
    """The options of one run against one endpoint (`run` and the pytest plugin). Each option's dest is the
    prefixed name (``conformance_deadline``) so it cannot collide with another plugin's."""
    d = prefix.replace("-", "_")
    add(f"--{prefix}prompt", dest=f"{d}prompt", default=None, help="prompt text (default: the profile's prompts)")
    add_header(add, prefix)
    add_set(add, prefix)
    add_deadline(add, prefix)
    add_dialect(add, prefix)
    add_model(add, prefix)
    add_max_tokens(add, prefix)
    add(f"--{prefix}follow-redirects", dest=f"{d}follow_redirects", action="store_true",
        help="follow redirects, re-validating each hop (default: a redirect is reported, not followed)")
    add_clients(add, prefix)


def add_clients(add: Add, prefix: str = "") -> None:
    """--clients and --chromium: real clients reading the endpoint (harness/clients), a check each."""
    from harness.clients import NAMES

    d = prefix.replace("-", "_")
    add(f"--{prefix}clients", dest=f"{d}clients", default=None, metavar="all|NAME,...",
        help=f"also read the endpoint with real clients, once each after the measured streams: all (every "
             f"one that speaks the dialect) or a comma list of {', '.join(NAMES)} (default: the profile's "
             "[clients] names)")
    add(f"--{prefix}chromium", dest=f"{d}chromium", default=None, metavar="PATH",
        help=_SHARED_BY_FLAG["--chromium"].meaning)


def clients_option(value: str | None) -> str | None:
    """--clients checked: an unknown client name is a usage error listing the names."""
    from harness.clients import parse_names

    try:
        parse_names(value)
    except ValueError as exc:
        raise ConfigError(f"--clients: {exc}") from None
    return value


def profile_overrides(args: Any) -> list[str]:
    """--set's values, then --token-method as the override it stands for (last, so it wins)."""
    overrides = list(getattr(args, "overrides", None) or [])
    method = getattr(args, "token_method", None)
    return overrides + ([f"token_method={method}"] if method else [])


def max_tokens_arg(text: str) -> int:
    """argparse type of --max-tokens: a positive whole number."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number of tokens, not {text!r}")
    return value


def parse_headers(raw: Iterable[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in raw or ():
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"header {item!r} is not of the form 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def run_options_from(ns: Any, prefix: str = "", **extra: Any):
    """Build the runner's RunOptions from parsed options (argparse Namespace or pytest config.option)."""
    from harness.run.runner import RunOptions  # imported late: the CLI's --help must not need the whole core

    d = prefix.replace("-", "_")

    def opt(name: str) -> Any:
        return getattr(ns, d + name)

    deadline = opt("deadline")
    if deadline is not None and deadline <= 0:
        raise ConfigError("--deadline must be positive")
    limits = Limits(deadline_s=deadline, idle_timeout_s=min(Limits().idle_timeout_s, deadline),
                    max_bytes=RUN_MAX_BYTES)
    return RunOptions(
        prompt=opt("prompt"),
        headers=parse_headers(opt("headers")),
        api_key=os.environ.get("STREAMCONFORM_API_KEY") or None,
        model=opt("model"),
        dialect=opt("dialect"),
        limits=limits,
        follow_redirects=opt("follow_redirects"),
        max_tokens=getattr(ns, d + "max_tokens", None),
        clients=clients_option(getattr(ns, d + "clients", None)),
        chromium=getattr(ns, d + "chromium", None),
        **extra,
    )


def prepare_output(option: str, path: str | None) -> None:
    """Make sure ``path`` can be written before any work is done: create its directory (as --html always did)
    and write a probe file there. A typo in an output path must cost a usage error, not a finished run."""
    if not path or path == "-":
        return
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{option} {path}: is a directory; give a file name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # A real file, not os.access: root passes access() on read-only mounts and /proc, then fails to write.
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=target.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write there ({exc.strerror or exc})") from None


def write_output(option: str, path: str, text: str | Iterable[str]) -> str | None:
    """Write one output file atomically; the reason it could not be written (for a usage error), or None.

    Checked up front by ``prepare_output``, but the disk can still fill up or a directory vanish during a run:
    the caller then prints the verdict anyway and exits 2.
    """
    from harness.atomic import atomic_write_text

    try:
        atomic_write_text(path, text, durable=False)
    except OSError as exc:
        return f"{option} {path}: cannot write it ({exc.strerror or exc})"
    return None


def require_url(url: str) -> None:
    """A URL that can never be requested (no scheme, ftp://, port 99999...) is a usage error, exit 2: no endpoint
    was named, so nothing failed. A valid URL nobody answers stays a failed run (exit 1)."""
    from harness.capture.guard import check_url

    problem = check_url(url)
    if problem is not None:
        raise ConfigError(f"{url!r} cannot be checked: {problem}")


def require_fault(name: str | None) -> None:
    """An unknown --fault is a usage error listing the valid names, not a server that fails every check."""
    if name is None:
        return
    from reference_server.faults import FAULTS
    from reference_server.protocols.faults import PROTOCOL_FAULTS

    if name not in FAULTS and name not in PROTOCOL_FAULTS:
        raise ConfigError(f"unknown fault {name!r}; the fault modes are: {', '.join([*FAULTS, *PROTOCOL_FAULTS])} "
                          "(`streamconform serve --list-faults` describes each)")
