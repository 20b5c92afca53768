"""Real clients reading the endpoint: "will the SDKs and the exam's browser page read it?"

The ``clients`` stage (harness/clients/collect.py, last in run_target) sends the main request once more
through each selected client, each in its own subprocess (harness/clients/child.py) with the run's remaining
deadline and a memory bound, and files plain data in ``extra["clients"]``; the ``clients.<name>`` checks
(harness/checks/clients.py) judge it offline, so `streamconform check` re-judges a saved bundle.

    openai_python     the official ``openai`` package: chat.completions / responses, stream=True
    anthropic_python  the official ``anthropic`` package: messages.create(stream=True)
    ollama_python     the official ``ollama`` package: chat / generate, stream=True
    google_genai      the ``google-genai`` package: models.generate_content_stream
    openai_node       the official ``openai`` npm package under Node: chat.completions / responses, stream: true
    vercel_ai         the Vercel AI SDK (``ai``) under Node: streamText over its OpenAI-compatible provider
    browser           headless Chromium: a page on another origin fetch()es the endpoint, reads response.body

The Node clients need ``node`` (18+) and their npm packages, installed on request only, by
``streamconform clients --install`` (harness/clients/node_runtime.py).

Selection: ``run --clients all|NAME,...`` (pytest: ``--conformance-clients``) or a profile's
``[clients] names = [...]``; "all" is every client that speaks the run's dialect.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

INSTALL_HINT = "pip install 'streamconform[clients]'"
ALL = "all"


@dataclass(frozen=True)
class Client:
    name: str
    dialects: tuple[str, ...]  # the wire protocols it speaks
    package: str | None  # the Python module it needs (None: the browser and the Node clients)
    description: str
    npm: tuple[str, ...] = ()  # the npm packages a Node client needs (harness/clients/node_runtime.py)

    @property
    def runtime(self) -> str:
        return "node" if self.npm else "python" if self.package else "browser"

    def available(self, chromium: str | None = None) -> str | None:
        """Why this client cannot run here (with the hint to fix it), or None."""
        if self.npm:
            from harness.clients.node_runtime import missing

            return missing(self.npm)
        if self.package is None:
            from harness.clients.browser import find_chromium

            if find_chromium(chromium) is None:
                return ("Chromium not found (looked for chromium, chromium-browser, google-chrome on PATH; "
                        "give --chromium PATH or STREAMCONFORM_CHROMIUM)")
            return None
        try:
            found = importlib.util.find_spec(self.package) is not None
        except (ImportError, ValueError):
            found = False
        return None if found else f"the {self.package!r} package is not installed: {INSTALL_HINT}"


_ALL_DIALECTS = ("prompt", "openai", "openai-responses", "anthropic", "ollama", "gemini")

CLIENTS: dict[str, Client] = {c.name: c for c in (
    # Not the seed's prompt dialect: the SDK cannot send its body through its public API.
    Client("openai_python", ("openai", "openai-responses"), "openai",
           "the official openai package reads the stream (chat.completions / responses, stream=True)"),
    Client("anthropic_python", ("anthropic",), "anthropic",
           "the official anthropic package reads the stream (messages.create, stream=True)"),
    Client("ollama_python", ("ollama",), "ollama",
           "the official ollama package reads the stream (chat / generate, stream=True)"),
    Client("google_genai", ("gemini",), "google.genai",
           "the google-genai package reads the stream (models.generate_content_stream)"),
    Client("openai_node", ("openai", "openai-responses"), None,
           "the official openai npm package reads the stream under Node (chat.completions / responses, "
           "stream: true)", npm=("openai",)),
    Client("vercel_ai", ("openai", "openai-responses"), None,
           "the Vercel AI SDK reads the stream under Node (streamText, OpenAI-compatible provider)",
           npm=("ai", "@ai-sdk/openai-compatible", "@ai-sdk/openai")),
    Client("browser", _ALL_DIALECTS, None,
           "a browser page on another origin fetch()es the endpoint and reads response.body, as an exam page "
           "does"),
)}
NAMES = tuple(CLIENTS)


def parse_names(value: str | Iterable[str] | None) -> list[str]:
    """``"all"``, ``"openai_python,browser"`` or a list -> client names (``all`` kept as is); an unknown
    name raises ValueError."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        name = str(item).strip().replace("-", "_")
        if not name:
            continue
        if name != ALL and name not in CLIENTS:
            raise ValueError(f"unknown client {item!r}: the clients are {ALL}, {', '.join(NAMES)}")
        if name not in names:
            names.append(name)
    return names


def requested(profile: Any, extra: dict[str, Any] | None = None) -> list[str]:
    """The clients a run asks for: the profile's ``[clients] names`` (after --clients) and, re-judging a
    bundle, the ones it holds results of. ``all`` stays ``all`` here; :func:`expand` resolves it for a
    dialect."""
    names = parse_names(profile.get("clients.names", []) if profile is not None else [])
    held = (extra or {}).get("clients") if isinstance(extra, dict) else None
    if isinstance(held, dict):
        for name in held.get("requested") or []:
            if (name in CLIENTS or name == ALL) and name not in names:
                names.append(name)
    return names


def expand(names: Iterable[str], dialect: str | None = None) -> list[str]:
    """``all`` -> every client speaking ``dialect`` (every client when None); explicit names kept in order."""
    out: list[str] = []
    for name in names:
        chosen = [c for c, spec in CLIENTS.items() if dialect is None or dialect in spec.dialects] \
            if name == ALL else [name]
        out += [c for c in chosen if c not in out]
    return out


def is_selected(check_id: str, profile: Any, extra: dict[str, Any] | None = None) -> bool:
    """Whether ``clients.<name>`` is planned: its client is named (or ``all`` is)."""
    name = check_id.split(".", 1)[1]
    names = requested(profile, extra)
    return name in names or ALL in names


def with_clients(profile: Any, value: str | Iterable[str] | None) -> Any:
    """``profile`` with ``[clients] names`` replaced by ``value`` (--clients); itself when None."""
    names = parse_names(value)
    if not names:
        return profile
    import copy

    data = copy.deepcopy(profile.data)
    data.setdefault("clients", {})["names"] = names
    return type(profile)(data, source=profile.source)
