"""Read a roster: CSV with ``id,url`` columns, or JSON lines with ``id`` and ``url`` keys.

Every other column is kept, in order, and carried to the outputs. Decisions (documented in the README):

- a missing ``id`` or ``url`` column, an empty id, a row wider than the header, or unparsable JSON is an error;
- a duplicate id is an error listing every duplicate: grading one id twice (perhaps with two URLs) would make
  the result file and the resume step ambiguous, so the instructor must fix the roster first;
- an empty or malformed URL is *not* an error: that student is graded with status ``invalid_url``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

MAX_ID_CHARS = 200


@dataclass(frozen=True)
class Submission:
    """One roster row."""

    id: str
    url: str
    extra: dict[str, Any] = field(default_factory=dict)  # the roster's other columns, in order
    line: int = 0  # where it came from, for error messages


def load_roster(path: str | Path) -> list[Submission]:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read roster {path}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")  # spreadsheets often save a BOM
    except UnicodeDecodeError as exc:
        raise ConfigError(f"roster {path} is not UTF-8 (byte {exc.start})") from exc
    if _looks_like_json_lines(path, text):
        subs = _parse_json_lines(text, path)
    else:
        subs = _parse_csv(text, path)
    _refuse_duplicates(subs, path)
    if not subs:
        raise ConfigError(f"roster {path} has no submissions")
    return subs


def _looks_like_json_lines(path: Path, text: str) -> bool:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return True
    if path.suffix.lower() in (".csv", ".tsv"):
        return False
    return text.lstrip().startswith("{")


def _parse_csv(text: str, path: Path) -> list[Submission]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ConfigError(f"roster {path} is empty") from None
    except csv.Error as exc:
        raise ConfigError(f"roster {path}: bad CSV header: {exc}") from exc
    names = [h.strip() for h in header]
    lowered = [n.lower() for n in names]
    missing = [c for c in ("id", "url") if c not in lowered]
    if missing:
        raise ConfigError(f"roster {path}: missing column(s) {', '.join(missing)} "
                          f"(found: {', '.join(names) or 'nothing'}); the first line must name the columns, e.g. id,url")
    dupes = sorted({n for n in lowered if n and lowered.count(n) > 1})
    if dupes:
        raise ConfigError(f"roster {path}: column(s) named twice: {', '.join(dupes)}")
    id_col, url_col = lowered.index("id"), lowered.index("url")
    subs: list[Submission] = []
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank line
            if len(row) > len(names):
                raise ConfigError(f"roster {path}, line {line}: {len(row)} fields but the header has {len(names)} "
                                  "(an unquoted comma in a value?)")
            row = row + [""] * (len(names) - len(row))
            extra = {n: row[i] for i, n in enumerate(names) if i not in (id_col, url_col) and n}
            subs.append(_submission(row[id_col], row[url_col], extra, line, path))
    except csv.Error as exc:
        raise ConfigError(f"roster {path}, line {reader.line_num}: bad CSV: {exc}") from exc
    return subs


def _parse_json_lines(text: str, path: Path) -> list[Submission]:
    subs: list[Submission] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"roster {path}, line {line_no}: not JSON: {exc.msg}") from exc
        if not isinstance(obj, dict):
            raise ConfigError(f"roster {path}, line {line_no}: expected a JSON object with id and url")
        missing = [k for k in ("id", "url") if k not in obj]
        if missing:
            raise ConfigError(f"roster {path}, line {line_no}: missing key(s) {', '.join(missing)}")
        ident, url = obj["id"], obj["url"]
        if not isinstance(ident, (str, int)) or isinstance(ident, bool):
            raise ConfigError(f"roster {path}, line {line_no}: id must be a string or an integer")
        url_text = url if isinstance(url, str) else ("" if url is None else json.dumps(url))
        extra = {k: v for k, v in obj.items() if k not in ("id", "url")}
        subs.append(_submission(str(ident), url_text, extra, line_no, path))
    return subs


def _submission(ident: str, url: str, extra: dict[str, Any], line: int, path: Path) -> Submission:
    ident = ident.strip()
    if not ident:
        raise ConfigError(f"roster {path}, line {line}: empty id")
    if len(ident) > MAX_ID_CHARS:
        raise ConfigError(f"roster {path}, line {line}: id longer than {MAX_ID_CHARS} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in ident):
        raise ConfigError(f"roster {path}, line {line}: id {ident!r} contains control characters")
    return Submission(id=ident, url=url.strip(), extra=extra, line=line)


def _refuse_duplicates(subs: list[Submission], path: Path) -> None:
    seen: dict[str, list[int]] = {}
    for s in subs:
        seen.setdefault(s.id, []).append(s.line)
    dupes = {k: v for k, v in seen.items() if len(v) > 1}
    if dupes:
        shown = "; ".join(f"{k!r} on lines {', '.join(map(str, v))}" for k, v in list(dupes.items())[:10])
        more = f" (and {len(dupes) - 10} more)" if len(dupes) > 10 else ""
        raise ConfigError(f"roster {path}: duplicate id(s): {shown}{more}. Each id must appear once "
                          "(its result file is named after it); remove or rename the duplicates")
