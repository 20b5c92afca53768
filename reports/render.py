"""The machinery every report shares: one Jinja2 environment, the embedded assets, the page's security policy.

Every value shown in a report may come from a hostile endpoint, so:
- templates are autoescaped, and chart data travels as JSON inside ``<script type="application/json">`` through
  Jinja's ``tojson`` (which escapes ``<``, ``>``, ``&`` and ``'``), never spliced into code;
- the page carries a Content-Security-Policy that allows nothing to be fetched (``default-src 'none'``) and only
  the exact inline scripts and styles we wrote to run (by SHA-256 hash), so even markup that slipped through the
  escaping could neither execute nor phone home;
- long strings are cut with a visible note, so a 100 MB transcript cannot become a 100 MB page.

The chart library (Chart.js, MIT, vendored in ``static/`` with its license) is inlined into each page: one file
per report, nothing fetched when it opens, readable offline.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from harness import __version__
from harness.atomic import atomic_write_text

# Bounds on what one report may show (the page must stay small and fast however big the input was).
MAX_TRANSCRIPT_CHARS = 200_000
MAX_EXCERPT_CHARS = 600
MAX_EVIDENCE_ITEMS = 12
MAX_TEXT_CHARS = 2_000
MAX_CHART_POINTS = 4_000

CHART_LIBRARY = "chart.umd.min.js"


@cache
def asset(name: str) -> str:
    """The text of a file under ``reports/static/``."""
    text = resources.files("reports").joinpath("static", name).read_text(encoding="utf-8")
    # The browser hashes a script as parsed, and HTML parsing turns CRLF/CR into LF: hash what it will see.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "</script" in text.lower() or "</style" in text.lower():
        raise RuntimeError(f"static asset {name} cannot be inlined: it contains a closing tag")
    return text


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def content_security_policy(scripts: list[str], styles: list[str]) -> str:
    """Nothing may load; only these exact inline scripts and styles may run."""
    script_src = " ".join(_csp_hash(s) for s in scripts) or "'none'"
    style_src = " ".join(_csp_hash(s) for s in styles) or "'none'"
    return (f"default-src 'none'; script-src {script_src}; style-src {style_src}; img-src data:; "
            "base-uri 'none'; form-action 'none'")


# -- filters: how values look on the page ---------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CONTROL_NAMES = {"\r": "CR", "\x00": "NUL", "\x1b": "ESC", "\x7f": "DEL", "\x0b": "VT", "\x0c": "FF"}


def _control_chip(match: re.Match[str]) -> str:
    ch = match.group(0)
    name = _CONTROL_NAMES.get(ch, f"x{ord(ch):02X}")
    return f'<span class="ctl" title="U+{ord(ch):04X}">{name}</span>'


def visible(text: Any, limit: int = MAX_EXCERPT_CHARS) -> Markup:
    """Escaped text with control characters (other than newline and tab) shown as small labelled chips
    (CR, NUL, ESC, x01...), which read the same in any font; cut to ``limit`` characters with a note."""
    if text is None:
        return Markup("")
    s = str(text)
    cut = len(s) > limit
    out = _CONTROL.sub(_control_chip, str(escape(s[:limit])))  # escape first: the chips are our only markup
    if cut:
        out += f" \u2026 [{len(s) - limit:,} more characters not shown]"
    return Markup(out)


def clip(text: Any, limit: int = MAX_TEXT_CHARS) -> str:
    """A plain string cut to ``limit`` characters with an ellipsis."""
    if text is None:
        return ""
    s = str(text)
    return s if len(s) <= limit else s[:limit] + "\u2026"


def finite_float(v: Any) -> float | None:
    """A JSON number as a float for a chart or a comparison; None for anything else (bool, NaN, inf, text)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def number(value: Any, digits: int = 3) -> str:
    """Numbers as people read them: 3 significant digits for small values, thousands separators for big ones."""
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}" if value else "0"
    return clip(value, 200)


def value(v: Any) -> str:
    """Any measured/threshold value (number, string, list, dict) as one short line of text."""
    if v is None:
        return "\u2014"
    if isinstance(v, (int, float, bool)):
        return number(v)
    if isinstance(v, str):
        return visible(v, 300)
    try:
        return visible(json.dumps(v, ensure_ascii=False, sort_keys=True, default=str), 300)
    except (TypeError, ValueError):
        return visible(repr(v), 300)


def percent(v: Any, digits: int = 1) -> str:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        return "\u2014"
    return f"{v * 100:.{digits}f} %"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=True,  # every template, whatever its extension: all values are hostile until escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(visible=visible, clip=clip, number=number, value=value, percent=percent)
    return env


def json_safe(value: Any) -> Any:
    """Chart data as strict JSON: NaN and infinities (which Python's json writes but JSON.parse rejects) -> null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def render_page(template: str, *, title: str, data: Any, script: str, **context: Any) -> str:
    """Render ``template`` as one self-contained page: the chart library, the shared and the page's own script.

    ``data`` is what the page's script draws from; it is embedded as escaped JSON, read with JSON.parse.
    """
    scripts = [asset(CHART_LIBRARY), asset("common.js"), asset(script)]
    styles = [asset("report.css")]
    return environment().get_template(template).render(
        title=title,
        csp=content_security_policy(scripts, styles),
        scripts=scripts,
        styles=styles,
        data=json_safe(data),
        harness_version=__version__,
        **context,
    )


def write_html(path: str | os.PathLike[str], html: str) -> Path:
    """Write a report atomically (a reader never sees half a page); create the directory if needed."""
    return atomic_write_text(path, html, durable=False)


def downsample(points: list, limit: int = MAX_CHART_POINTS, keep: set[int] | None = None) -> list:
    """At most ``limit`` points, evenly strided, always keeping the first, the last and the indices in ``keep``."""
    n = len(points)
    if n <= limit:
        return list(points)
    stride = n / limit
    chosen = {int(i * stride) for i in range(limit)} | {0, n - 1} | (keep or set())
    return [points[i] for i in sorted(chosen) if 0 <= i < n]
