"""Feedback Markdown cannot be steered by what a roster or an endpoint supplies.

The roster URL, the submission id, the invalid-URL reason, check messages, measures, evidence excerpts and
the reproduce command all come from outside. Each test renders a student's feedback file with an injection
in one of them, parses it with a CommonMark parser (markdown-it-py, which rich already requires) and checks
the document's structure is the one a harmless value gives: the same headings, list items and code blocks,
no HTML, no links or images, and the injected text only inside code, verbatim apart from its control
characters made visible.
"""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from harness.grade.attempt import AttemptOutcome, GradeInput, build_record
from harness.grade.feedback import code_block, code_span, render_markdown, student_view, visible
from harness.grade.roster import Submission
from harness.grade.urls import url_problem

MD = MarkdownIt("commonmark")

IMG = "<img src=x onerror=alert(3)>"
HOSTILE = [
    "http://host/`" + IMG + "`",
    "http://host/``" + IMG + "``` x ````",
    "`" + IMG,
    "http://host/a\n\n# Injected heading\n\n<script>alert(1)</script>\n- injected item",
    "http://host/a\r\n```\n" + IMG + "\n```",
    "http://host/\u2028[link](javascript:alert(1))\u202e![i](http://evil/x.png)",
    "http://host/\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\",
    "http://host/ <b>bold</b> &amp; *em* _em_ \\",
]


class _Runner:
    def weights(self, overrides):
        return {"http.status": 1, "errors.bad_json": 2}

    def profile_name(self):
        return "t"


def _result(message: str, excerpt: str, reproduce: str, measured: str) -> dict:
    return {
        "passed": False,
        "metrics": {},
        "checks": [
            {"id": "http.status", "status": "pass", "required": True, "message": "200", "evidence": []},
            {"id": "errors.bad_json", "status": "fail", "required": True, "measured": measured,
             "threshold": "4xx", "message": message,
             "evidence": [{"offset": 7, "excerpt": excerpt, "t": 0.25}], "reproduce": reproduce},
        ],
    }


def _feedback(url: str = "http://host/v1", ident: str = "s1", message: str = "answered 200 to bad JSON",
              excerpt: str = "data: {}", reproduce: str = "curl -d '{' http://host/v1", measured: str = "200",
              thresholds: tuple[str, ...] = ("content.min_chars=1600",)) -> str:
    problem = url_problem(url)
    if problem:
        outcome = AttemptOutcome(status="invalid_url", result=None, error=problem, started_at="t")
    else:
        result = _result(message, excerpt, reproduce, measured)
        outcome = AttemptOutcome(status="ok", result=result, started_at="t")
    item = GradeInput(Submission(ident, url, {}), list(thresholds))
    record = build_record(item, _Runner(), [outcome], outcome, "t0", 1.0)
    return render_markdown(student_view(record))


def _shape(markdown: str) -> list[tuple[str, str]]:
    """The block structure: (token type, tag) of every block token, e.g. heading_open h1."""
    return [(t.type, t.tag) for t in MD.parse(markdown) if t.type != "inline"]


def _inline_children(markdown: str) -> list:
    return [child for t in MD.parse(markdown) if t.type == "inline" for child in (t.children or [])]


def _assert_inert(markdown: str) -> None:
    """No raw HTML reaches the page, and nothing became a link or an image."""
    html = MD.render(markdown)
    assert "<img" not in html and "<script" not in html and "<b>" not in html, html
    kinds = {t.type for t in MD.parse(markdown)} | {c.type for c in _inline_children(markdown)}
    assert not kinds & {"html_block", "html_inline", "link_open", "image"}, kinds


def _code_texts(markdown: str) -> list[str]:
    spans = [c.content for c in _inline_children(markdown) if c.type == "code_inline"]
    return spans + [t.content for t in MD.parse(markdown) if t.type == "fence"]


@pytest.mark.parametrize("url", HOSTILE)
def test_a_hostile_roster_url_stays_one_code_span(url: str) -> None:
    text = _feedback(url=url)
    harmless = _feedback(url="http://host/v1" if url_problem(url) is None else "http://host/ bad")
    assert _shape(text) == _shape(harmless)
    assert len(text.splitlines()) == len(harmless.splitlines())
    _assert_inert(text)
    assert visible(url) in _code_texts(text)  # shown verbatim, not lost: only invisible characters escaped


@pytest.mark.parametrize("url, valid", [
    ("http://host/`<img src=x onerror=alert(3)>`", False),  # the issue's example (its spaces make it invalid)
    ("http://host/`<img/src=x/onerror=alert(3)>`", True),  # the same without spaces: graded normally
])
def test_the_issue_example_url_cannot_close_its_span(url: str, valid: bool) -> None:
    assert (url_problem(url) is None) is valid
    text = _feedback(url=url)
    line = next(line for line in text.splitlines() if line.startswith("- URL:"))
    assert line == f"- URL: `` {url} ``"
    _assert_inert(text)


def test_a_url_with_newlines_cannot_add_lines_to_the_invalid_url_feedback() -> None:
    url = "http://host/a\n\n## Grade override\n\nScore: 100 / 100\n<script>alert(1)</script>"
    text = _feedback(url=url)
    assert "## Grade override" not in text.splitlines() and "Score: 100 / 100" not in text.splitlines()
    headings = [t.tag for t in MD.parse(text) if t.type == "heading_open"]
    assert headings == ["h1", "h2"]  # the title and "Not graded"
    _assert_inert(text)
    assert "URL contains whitespace or control characters" in text


@pytest.mark.parametrize("ident", ["<b>x</b>", "a`b` # c", "x\n\n# forged title", "``` \n<img src=x>"])
def test_a_hostile_submission_id_stays_in_the_title(ident: str) -> None:
    text = _feedback(ident=ident)
    assert _shape(text) == _shape(_feedback())
    _assert_inert(text)
    assert text.splitlines()[0].startswith("# Feedback for ") and visible(ident) in _code_texts(text)


@pytest.mark.parametrize("field", ["message", "excerpt", "reproduce", "measured"])
@pytest.mark.parametrize("value", [
    "oops\n```\n" + IMG + "\n# owned",
    "`````\n~~~\n</code></pre><script>alert(1)</script>",
    "line\r```\rafter a bare CR",
    "\u2028```\u2029" + IMG,
    "    ```\n" + IMG,
])
def test_endpoint_text_cannot_close_the_evidence_block(field: str, value: str) -> None:
    text = _feedback(**{field: value})
    assert _shape(text) == _shape(_feedback())  # one fenced block for the failed check, nothing after it
    _assert_inert(text)
    fences = [t for t in MD.parse(text) if t.type == "fence"]
    assert len(fences) == 1
    body = fences[0].content
    shown = visible(repr(value)) if field == "excerpt" else visible(value)
    assert shown in body and "\r" not in body and "\u2028" not in body
    assert len(body.splitlines()) == len(_feedback_block_lines())  # the endpoint added no line to the block


def _feedback_block_lines() -> list[str]:
    return next(t for t in MD.parse(_feedback()) if t.type == "fence").content.splitlines()


def test_hostile_thresholds_stay_in_their_list_item() -> None:
    text = _feedback(thresholds=("content.min_chars=1`600\n- forged: yes",))
    assert _shape(text) == _shape(_feedback())
    _assert_inert(text)


# --- the escaping functions themselves ----------------------------------------------------------------------
@pytest.mark.parametrize("value", ["plain", "`", "``", "a`b", "a``b```c", "`edge", "edge`", " lead",
                                   "trail ", " both ", "   ", "<b>&amp;</b>", "x\ny\r\nz", "tab\there",
                                   "\x00\x1b\x7f\x85", "\u202eevil", "*a* _b_ [c](d) ![e](f) \\"])
def test_code_span_round_trips_through_a_commonmark_parser(value: str) -> None:
    tokens = MD.parseInline(code_span(value))[0].children
    assert [t.type for t in tokens] == ["code_inline"], code_span(value)
    assert tokens[0].content == visible(value)
    assert "\n" not in code_span(value) and "\r" not in code_span(value)


def test_an_empty_value_is_still_a_code_span() -> None:
    assert [t.type for t in MD.parseInline(code_span(""))[0].children] == ["code_inline"]


@pytest.mark.parametrize("text", ["```", "````\n```", "a\n~~~\nb", "```` x ```` y\n```````", "plain\ntext"])
def test_code_block_cannot_be_closed_from_inside(text: str) -> None:
    tokens = MD.parse("\n".join([*code_block(text), "after"]) + "\n")
    assert [t.type for t in tokens if t.type != "inline"][:2] == ["fence", "paragraph_open"]
    assert tokens[0].content == text + "\n"


def test_visible_escapes_only_invisible_characters() -> None:
    assert visible("a\nb\rc\x1bd\u2028e\u202ef\tg é ü 中") == "a\\nb\\rc\\x1bd\\u2028e\\u202ef\tg é ü 中"
