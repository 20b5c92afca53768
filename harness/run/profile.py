"""Profiles: thresholds, required/advisory flags, weights, prompts and probe settings, read from TOML.

A profile is a TOML file (built-ins in harness/run/profiles/, or any path). Layout:

    name, description, dialect ("prompt" | "openai"), formats (["sse", "ndjson"]), schema ("chunk.seed"),
    token_method ("chars/4"), prompts (>= 2, on unrelated topics: the second one feeds content.distinct)
    extends = "tds"            optional: start from another profile and override (tables merge key by key)
    [content] [timing] ...     thresholds read by the checks of that category
    [errors] [robustness]      settings read by harness/run/probes.py and harness/run/robustness.py (profile.section())
    [checks."timing.ttft"]     required / weight / enabled for one check id;
    [checks."errors.*"]        or for a glob of ids; the most specific entry wins, "*" is the fallback
                               (without one, an unlisted check runs as advisory with no weight)

``--set KEY=VALUE`` overrides any existing setting, typed like the value it replaces:
``timing.ttft_ms=1500``, ``dialect=openai``, ``checks.timing.ttft.required=false``. An unknown key is a
ConfigError, so a typo never silently does nothing.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import sys
from dataclasses import dataclass
from importlib import resources
from typing import Any

from harness.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised by tox on 3.10
    import tomli as tomllib

from harness.dialects import NAMES as DIALECTS  # noqa: E402 - every wire protocol a profile may name

FORMATS = ("sse", "ndjson")
_RULE_FIELDS = {"required": bool, "weight": float, "enabled": bool}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


@dataclass(frozen=True, slots=True)
class CheckRule:
    enabled: bool = True
    required: bool = False
    weight: float = 0.0


class Profile:
    """A loaded profile. ``data`` is the merged TOML document after overrides."""

    def __init__(self, data: dict[str, Any], source: str = "") -> None:
        self.data = data
        self.source = source  # the file it came from
        # rule() per check id, for the [checks] table it was read from: evaluation asks for every rule once per
        # check and the glob matching showed in a grade's profile. A new table (another profile) starts afresh.
        self._rules: tuple[Any, dict[str, CheckRule]] = (None, {})
        self._validate()

    # -- top-level fields -------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def description(self) -> str:
        return self.data.get("description", "")

    @property
    def dialect(self) -> str:
        return self.data.get("dialect", "prompt")

    @property
    def formats(self) -> list[str]:
        return list(self.data.get("formats", ["sse"]))

    @property
    def schema(self) -> str:
        return self.data.get("schema", "chunk.seed")

    @property
    def token_method(self) -> str:
        return self.data.get("token_method", "chars/4")

    @property
    def prompts(self) -> list[str]:
        return list(self.data.get("prompts", []))

    # -- settings ---------------------------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        """A setting by dotted key (``"timing.ttft_ms"``); ``default`` when absent."""
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def section(self, name: str) -> dict[str, Any]:
        """A whole table (e.g. ``"errors"``, ``"robustness"``) as a dict copy; empty when absent."""
        value = self.data.get(name, {})
        return copy.deepcopy(value) if isinstance(value, dict) else {}

    # -- check rules ------------------------------------------------------------------------------------------
    def rule(self, check_id: str) -> CheckRule:
        """The rule for a check id: exact entry, else the most specific matching glob, else ``"*"``."""
        checks = self.data.get("checks", {})
        table, memo = self._rules
        if table is not checks or len(memo) > 4096:
            memo = {}
            self._rules = (checks, memo)
        rule = memo.get(check_id)
        if rule is None:
            rule = memo[check_id] = self._rule(checks, check_id)
        return rule

    @staticmethod
    def _rule(checks: dict[str, Any], check_id: str) -> CheckRule:
        entry = checks.get(check_id)
        if entry is None:
            patterns = [p for p in checks if p != "*" and any(ch in p for ch in "*?[") and fnmatch.fnmatchcase(
                check_id, p)]
            if patterns:
                entry = checks[max(patterns, key=lambda p: len(p.replace("*", "")))]
            else:
                entry = checks.get("*", {})  # unlisted and no "*": runs, advisory, no weight
        required = bool(entry.get("required", False))
        # A required check without an explicit weight counts once; an advisory one not at all.
        return CheckRule(enabled=bool(entry.get("enabled", True)), required=required,
                         weight=float(entry.get("weight", 1.0 if required else 0.0)))

    def enabled(self, check_id: str) -> bool:
        return self.rule(check_id).enabled

    def _validate(self) -> None:
        d = self.data
        where = f"profile {d.get('name', self.source)!r}"
        if not isinstance(d.get("name"), str) or not d["name"]:
            raise ConfigError(f"{where}: 'name' is required")
        if self.dialect not in DIALECTS:
            raise ConfigError(f"{where}: dialect must be one of {', '.join(DIALECTS)}, not {self.dialect!r}")
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise ConfigError(f"{where}: formats must be a non-empty subset of {list(FORMATS)}, got {self.formats}")
        prompts = d.get("prompts", [])
        if not isinstance(prompts, list) or len(prompts) < 2 or not all(isinstance(p, str) and p for p in prompts):
            raise ConfigError(f"{where}: 'prompts' must list at least two non-empty prompts on unrelated topics")
        from harness.measure.tokens import METHODS

        if self.token_method not in METHODS:
            raise ConfigError(f"{where}: token_method must be one of {', '.join(METHODS)}")
        from schemas import ALIASES, schema_names

        if self.schema not in schema_names() and self.schema not in ALIASES:
            raise ConfigError(f"{where}: schema {self.schema!r} is not one of {', '.join(schema_names())}")
        for check_id, entry in d.get("checks", {}).items():
            if not isinstance(entry, dict):
                raise ConfigError(f"{where}: checks.{check_id} must be a table")
            unknown = set(entry) - set(_RULE_FIELDS)
            if unknown:
                raise ConfigError(f"{where}: checks.{check_id}: unknown field(s) {sorted(unknown)}")
        from harness.clients import parse_names

        try:  # [clients] names: a typo would otherwise surface only when the checks are planned
            parse_names(self.get("clients.names", []))
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: clients.names: {exc}") from None
        modes = ("omit", "same-origin", "include")  # fetch()'s credentials modes
        if self.get("clients.browser_credentials", "same-origin") not in modes:
            raise ConfigError(f"{where}: clients.browser_credentials must be one of {', '.join(modes)}")


# -- loading ------------------------------------------------------------------------------------------------------


def builtin_profiles() -> list[str]:
    folder = resources.files("harness.run.profiles")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _read_toml(name_or_path: str) -> tuple[dict[str, Any], str]:
    looks_like_path = name_or_path.endswith(".toml") or os.sep in name_or_path or "/" in name_or_path
    try:
        if looks_like_path:
            with open(name_or_path, "rb") as fh:
                return tomllib.load(fh), name_or_path
        res = resources.files("harness.run.profiles").joinpath(f"{name_or_path}.toml")
        if not res.is_file():
            raise ConfigError(f"unknown profile {name_or_path!r}: built-in profiles are "
                              f"{', '.join(builtin_profiles())}, or give a path to a .toml file")
        return tomllib.loads(res.read_text(encoding="utf-8")), f"harness/run/profiles/{name_or_path}.toml"
    except OSError as exc:
        raise ConfigError(f"cannot read profile {name_or_path!r}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"profile {name_or_path!r} is not valid TOML: {exc}") from exc


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _load_data(name_or_path: str, seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    if name_or_path in seen:
        raise ConfigError(f"profile inheritance loop: {' -> '.join(seen + (name_or_path,))}")
    data, source = _read_toml(name_or_path)
    parent = data.pop("extends", None)
    if parent:
        base, _ = _load_data(parent, seen + (name_or_path,))
        data = _merge(base, data)
    return data, source


def parse_value(raw: str, current: Any, key: str) -> Any:
    """Parse ``raw`` to the type of the value it replaces."""
    text = raw.strip()
    if isinstance(current, bool):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(f"--set {key}: expected true or false, got {raw!r}")
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                raise ConfigError(f"--set {key}: expected a number, got {raw!r}") from None
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"--set {key}: expected a number, got {raw!r}") from None
    if isinstance(current, list):
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise ConfigError(f"--set {key}: not a JSON list: {exc}") from exc
            if not isinstance(value, list):
                raise ConfigError(f"--set {key}: expected a list")
            return value
        return [part.strip() for part in text.split(",") if part.strip()]
    return raw


def apply_override(data: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. timing.ttft_ms=1500")
    parts = key.split(".")
    if parts[0] == "checks" and len(parts) >= 3:
        check_id, field_name = ".".join(parts[1:-1]), parts[-1]
        if field_name not in _RULE_FIELDS:
            raise ConfigError(f"--set {key}: a check rule has only {', '.join(_RULE_FIELDS)}")
        from harness.checks import load_checks

        checks = data.setdefault("checks", {})
        if check_id not in checks and check_id not in load_checks():
            raise ConfigError(f"--set {key}: unknown check id {check_id!r}")
        entry = checks.setdefault(check_id, {})
        current = entry.get(field_name, _RULE_FIELDS[field_name]())
        entry[field_name] = parse_value(raw, current, key)
        return
    node: Any = data
    for part in parts[:-1]:
        if not isinstance(node, dict) or not isinstance(node.get(part), dict):
            raise ConfigError(f"--set {key}: unknown setting (no table {part!r})")
        node = node[part]
    last = parts[-1]
    if not isinstance(node, dict) or last not in node or isinstance(node[last], dict):
        raise ConfigError(f"--set {key}: unknown setting")
    node[last] = parse_value(raw, node[last], key)


def load_profile(name_or_path: str | Profile = "tds", overrides: list[str] | None = None) -> Profile:
    """Load a built-in profile by name or a TOML file by path, then apply ``KEY=VALUE`` overrides."""
    if isinstance(name_or_path, Profile):
        data, source = copy.deepcopy(name_or_path.data), name_or_path.source
    else:
        data, source = _load_data(str(name_or_path))
    for item in overrides or []:
        apply_override(data, item)
    return Profile(data, source)
