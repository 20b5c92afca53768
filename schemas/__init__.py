"""JSON Schemas shipped with streamconform, loadable from a source checkout or an installed wheel."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


def schema_names() -> list[str]:
    """Names accepted by load_schema (file names without ``.json``)."""
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".json"))


@cache
def _load(name: str) -> str:
    res = resources.files(__name__).joinpath(f"{name}.json")
    if not res.is_file():
        raise KeyError(f"no schema named {name!r} (known: {', '.join(schema_names())})")
    return res.read_text(encoding="utf-8")


# Earlier names kept loadable, so saved profiles and bundles that name them still work.
ALIASES = {"chunk.minimal": "chunk.any"}


def load_schema(name: str) -> dict[str, Any]:
    """A fresh copy of schema ``name`` (e.g. ``"chunk.openai"``, ``"result.schema"``); ``.json`` is optional."""
    if name.endswith(".json"):
        name = name[:-5]
    name = ALIASES.get(name, name)
    return json.loads(_load(name))
