"""Per-student thresholds: courses personalise them so that answers cannot simply be shared.

Two sources, one result (a list of ``KEY=VALUE`` overrides, the same syntax as ``--set``):

- a roster column holding ``content.min_chars=1625;timing.ttft_ms=2000`` (``--thresholds-column NAME``);
- a generator seeded by ``SEED#id`` (``--thresholds-seed SEED``): the same seed and id always give the same
  thresholds, on any machine and Python version (``random.Random`` seeded with a string hashes it with SHA-512).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping

from harness.errors import ConfigError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+$")

# key -> (low, high, step): what the seeded generator draws from. Overridable with --thresholds-range.
# Every value drawn must be met by a correct implementation: the reference server answers at least 1,600
# characters (--chars, default; about 1,680 in practice) with a TTFT near 50 ms, so min_chars ("strictly more
# than") stops at 1,500 and ttft_ms ("strictly less than") starts at 1,500. tests/test_grade_resume.py grades
# the reference server under many seeds to hold this.
DEFAULT_RANGES: dict[str, tuple[float, float, float]] = {
    "content.min_chars": (1000, 1500, 125),
    "timing.ttft_ms": (1500, 3000, 250),
}


def parse_overrides(text: str, *, where: str = "") -> list[str]:
    """``"a.b=1; c.d=2"`` -> ``["a.b=1", "c.d=2"]``; an empty cell means no override."""
    items: list[str] = []
    for part in re.split(r"[;\n]", text or ""):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _KEY.match(key) or not value:
            raise ConfigError(f"{where}threshold override {part!r} is not of the form section.key=value "
                              "(several separated by ';', e.g. content.min_chars=1625;timing.ttft_ms=2000)")
        items.append(f"{key}={value}")
    return items


def parse_range(text: str) -> tuple[str, tuple[float, float, float]]:
    """``content.min_chars=1000..2000/125`` -> ("content.min_chars", (1000, 2000, 125))."""
    m = re.fullmatch(r"\s*([^=\s]+)\s*=\s*([-\d.]+)\s*\.\.\s*([-\d.]+)\s*(?:/\s*([\d.]+))?\s*", text)
    if not m or not _KEY.match(m.group(1)):
        raise ConfigError(f"--thresholds-range {text!r} is not of the form section.key=LOW..HIGH[/STEP]")
    try:
        low, high = float(m.group(2)), float(m.group(3))
        step = float(m.group(4)) if m.group(4) else 1.0
    except ValueError as exc:
        raise ConfigError(f"--thresholds-range {text!r}: {exc}") from exc
    if high < low or step <= 0:
        raise ConfigError(f"--thresholds-range {text!r}: need LOW <= HIGH and STEP > 0")
    return m.group(1), (low, high, step)


def seeded_overrides(seed: str, ident: str, ranges: Mapping[str, tuple[float, float, float]]) -> list[str]:
    """Reproducible per (seed, id): a grade can be re-derived and explained later."""
    rng = random.Random(f"{seed}#{ident}")
    items = []
    for key in sorted(ranges):
        low, high, step = ranges[key]
        steps = int((high - low) // step)
        value = low + step * rng.randint(0, steps)
        items.append(f"{key}={_number(value)}")
    return items


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
