"""Options shared by `streamconform run` and the pytest plugin, defined once.

``add_run_options(add, prefix)`` takes an ``add(name, **kwargs)`` callable — argparse's ``add_argument`` or
pytest's ``group.addoption`` — so both front ends spell and document the options the same way. The pytest plugin
passes ``prefix="conformance-"`` so its names cannot clash with other plugins (pytest-html, pytest-benchmark,
pytest-xdist).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.model import CAPTURE_MAX_BYTES, Limits

# Body cap of one capture in a run: the cap every capture has (harness.model.CAPTURE_MAX_BYTES, with the reason),
# kept under this name for the callers that import it. All the captures of a run also share one byte budget
# (Limits.budget_bytes).
RUN_MAX_BYTES = CAPTURE_MAX_BYTES


def add_run_options(add: Callable[..., Any], prefix: str = "") -> None:
    """Each option's dest is the prefixed name (``conformance_timeout``) so it cannot collide with another plugin's."""
    d = prefix.replace("-", "_")
    add(f"--{prefix}prompt", dest=f"{d}prompt", default=None, help="prompt text (default: the profile's prompts)")
    header_names = [f"--{prefix}header"] + ([] if prefix else ["-H"])  # pytest reserves short options
    add(*header_names, dest=f"{d}headers", action="append", default=[],
        metavar="'NAME: VALUE'", help="extra request header, repeatable (e.g. -H 'Authorization: Bearer ...')")
    add(f"--{prefix}set", dest=f"{d}overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a profile setting, repeatable (e.g. --set timing.ttft_ms=1500)")
    add(f"--{prefix}timeout", f"--{prefix}deadline", dest=f"{d}timeout", type=float, default=60.0,
        metavar="SECONDS", help="total deadline of the whole run (default 60; --deadline is the same, as in grade)")
    add(f"--{prefix}dialect", dest=f"{d}dialect", choices=["prompt", "openai", "auto"], default=None,
        help="request body dialect (default: the profile's)")
    add(f"--{prefix}model", dest=f"{d}model", default=None, help="model name sent in the openai dialect")
    add(f"--{prefix}max-tokens", dest=f"{d}max_tokens", type=max_tokens_arg, default=None, metavar="N",
        help="ask for at most N tokens (sent as the dialect's max_tokens), so a server that never emits an end "
             "token stops")
    add(f"--{prefix}follow-redirects", dest=f"{d}follow_redirects", action="store_true",
        help="follow redirects, re-validating each hop (default: a redirect is reported, not followed)")


def max_tokens_arg(text: str) -> int:
    """argparse type of --max-tokens: a positive whole number."""
    import argparse

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
    from harness.runner import RunOptions  # imported late: the CLI's --help must not need the whole core

    d = prefix.replace("-", "_")

    def opt(name: str) -> Any:
        return getattr(ns, d + name)

    timeout = opt("timeout")
    if timeout is not None and timeout <= 0:
        raise ConfigError("--timeout must be positive")
    limits = Limits(deadline_s=timeout, idle_timeout_s=min(Limits().idle_timeout_s, timeout), max_bytes=RUN_MAX_BYTES)
    return RunOptions(
        prompt=opt("prompt"),
        headers=parse_headers(opt("headers")),
        api_key=os.environ.get("STREAMCONFORM_API_KEY") or None,
        model=opt("model"),
        dialect=opt("dialect"),
        limits=limits,
        follow_redirects=opt("follow_redirects"),
        max_tokens=getattr(ns, d + "max_tokens", None),
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
    from harness.guard import check_url

    problem = check_url(url)
    if problem is not None:
        raise ConfigError(f"{url!r} cannot be checked: {problem}")


def require_fault(name: str | None) -> None:
    """An unknown --fault is a usage error listing the valid names, not a server that fails every check."""
    if name is None:
        return
    from reference_server.faults import FAULTS

    if name not in FAULTS:
        raise ConfigError(f"unknown fault {name!r}; the fault modes are: {', '.join(FAULTS)} "
                          "(`streamconform serve --list-faults` describes each)")
