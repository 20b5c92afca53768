"""content checks: enough content, and content that is a real answer (relevant, not echoed, not canned,
not padding, not faked with a placeholder first chunk). Thresholds come from the profile's [content] table."""

from __future__ import annotations

from harness.checks import Context, Outcome, check, evidence
from harness.checks import text as tx
from harness.measure.metrics import is_meaningful

_EXCERPT = 160
# The text measures below build word n-gram sets; past this many characters they would cost memory and seconds
# for no better verdict (a padded or canned answer shows itself in its first 100 k characters).
ANALYSIS_LIMIT = 100_000


def _text(transcript) -> str:
    return transcript.text[:ANALYSIS_LIMIT]


def _answer_evidence(ctx: Context, length: int = _EXCERPT) -> list[dict]:
    content = ctx.primary.content_chunks
    if not content:
        return []
    return [evidence(content[0].offset, ctx.primary.text[:length], content[0].t)]


def _prompt(transcript) -> str:
    return transcript.capture.request.prompt or ""


@check("content.chunks", description="at least N content chunks that carry text (placeholders do not count)")
def chunks(ctx: Context) -> Outcome:
    need = ctx.setting("content.min_chunks", 5)
    content = ctx.primary.content_chunks
    # Whitespace/"..." chunks are delivered but carry no answer: counting them would let a server pad one real
    # chunk with four spaces. Real streams have far more than N chunks with text, so nothing honest is lost.
    real = [c for c in content if is_meaningful(c.content)]
    got = len(real)
    note = f" (+{len(content) - got} whitespace/placeholder)" if len(content) > got else ""
    ev = [evidence(c.offset, c.content, c.t) for c in content[:3]]
    return Outcome.of(got >= need, f"{got} content chunks with text{note}", measured=got, threshold=f">= {need}",
                      evidence=ev)


@check("content.chars", description="more than N characters of content")
def chars(ctx: Context) -> Outcome:
    need = ctx.setting("content.min_chars", 1375)
    got = ctx.primary.metrics.chars
    return Outcome.of(got > need, f"{got} characters of content", measured=got, threshold=f"> {need}",
                      evidence=_answer_evidence(ctx))


def _no_text(ctx: Context) -> Outcome | None:
    if not _text(ctx.primary).strip():
        return Outcome.failed("no content to judge", measured=None)
    return None


@check("content.relevance", description="the answer covers the prompt's key terms (stopwords removed)")
def relevance(ctx: Context) -> Outcome:
    if (bad := _no_text(ctx)) is not None:
        return bad
    prompt = _prompt(ctx.primary)
    terms = tx.key_terms(prompt)
    if not terms:
        return Outcome.skip("the prompt has no key terms to look for")
    need = ctx.setting("content.relevance_min", 0.3)
    text = _text(ctx.primary)
    got = tx.coverage(text, prompt)
    found = sorted(terms & {tx.stem(w) for w in tx.words(text)})
    missing = sorted(terms - set(found))
    return Outcome.of(got >= need, f"{len(found)} of {len(terms)} key terms of the prompt in the answer"
                      + (f"; missing: {', '.join(missing[:10])}" if missing else ""),
                      measured=round(got, 3), threshold=f">= {need}", evidence=_answer_evidence(ctx))


@check("content.not_echo", description="the answer is not mostly the prompt repeated back")
def not_echo(ctx: Context) -> Outcome:
    if (bad := _no_text(ctx)) is not None:
        return bad
    limit = ctx.setting("content.echo_max", 0.6)
    got = tx.copied_share(_text(ctx.primary), _prompt(ctx.primary))
    return Outcome.of(got <= limit, f"{got:.0%} of the answer's word trigrams are copied from the prompt",
                      measured=round(got, 3), threshold=f"<= {limit}", evidence=_answer_evidence(ctx))


@check("content.distinct", description="two unrelated prompts get clearly different answers, each closer to its own")
def distinct(ctx: Context) -> Outcome:
    if ctx.secondary is None:
        return Outcome.skip("no secondary capture (a second prompt) to compare with")
    if (bad := _no_text(ctx)) is not None:
        return bad
    a1, a2 = _text(ctx.primary), _text(ctx.secondary)
    p1, p2 = _prompt(ctx.primary), _prompt(ctx.secondary)
    sec_content = ctx.secondary.content_chunks
    sec_ev = evidence(sec_content[0].offset, a2[:_EXCERPT], sec_content[0].t, capture="secondary") if sec_content \
        else evidence(None, f"secondary: HTTP {ctx.secondary.capture.status}, {ctx.secondary.capture.end_reason}",
                      None, capture="secondary")
    ev = _answer_evidence(ctx) + [sec_ev]
    if not a2.strip():
        return Outcome.failed("the second prompt got no content", measured=None, evidence=ev)
    limit = ctx.setting("content.distinct_max_similarity", 0.5)
    sim = tx.jaccard(a1, a2)
    own1, other1 = tx.coverage(a1, p1), tx.coverage(a1, p2)
    own2, other2 = tx.coverage(a2, p2), tx.coverage(a2, p1)
    measured = {"similarity": round(sim, 3), "primary_own_vs_other": [round(own1, 3), round(other1, 3)],
                "secondary_own_vs_other": [round(own2, 3), round(other2, 3)]}
    problems = []
    if sim >= limit:
        problems.append(f"the two answers share {sim:.0%} of their phrases (canned answer?)")
    if not own1 > other1:
        problems.append(f"answer 1 matches the other prompt as well as its own ({own1:.2f} vs {other1:.2f})")
    if not own2 > other2:
        problems.append(f"answer 2 matches the other prompt as well as its own ({own2:.2f} vs {other2:.2f})")
    if problems:
        return Outcome.failed("; ".join(problems), measured=measured, threshold=f"similarity < {limit}, own > other",
                              evidence=ev)
    return Outcome.passed(f"answers differ (similarity {sim:.2f}) and each is closer to its own prompt",
                          measured=measured, threshold=f"similarity < {limit}, own > other")


@check("content.not_padding", description="the answer is not repeated filler (zlib ratio, duplicate 5-grams)")
def not_padding(ctx: Context) -> Outcome:
    if (bad := _no_text(ctx)) is not None:
        return bad
    text = _text(ctx.primary)
    min_ratio = ctx.setting("content.padding_min_ratio", 0.2)
    max_dup = ctx.setting("content.padding_max_dup5", 0.5)
    ratio, dup = tx.compression_ratio(text), tx.duplicate_ngram_share(text)
    measured = {"compression_ratio": round(ratio, 3), "duplicate_5gram_share": round(dup, 3)}
    problems = []
    if ratio < min_ratio:
        problems.append(f"compresses to {ratio:.0%} of its size (repetitive)")
    if dup > max_dup:
        problems.append(f"{dup:.0%} of its 5-word phrases repeat")
    threshold = f"ratio >= {min_ratio}, duplicate 5-grams <= {max_dup}"
    if problems:
        return Outcome.failed("; ".join(problems), measured=measured, threshold=threshold,
                              evidence=_answer_evidence(ctx, 400))
    return Outcome.passed("no repetition", measured=measured, threshold=threshold)


@check("content.placeholder_first",
       description="no empty/'...' first content chunk followed by a long wait (fakes a low latency)")
def placeholder_first(ctx: Context) -> Outcome:
    chunks = ctx.primary.chunks
    limit = ctx.setting("content.placeholder_gap_ms", 500)
    # The first chunk that carries a content field. OpenAI's opening {"role": "assistant", "content": ""} is the
    # protocol's own convention, not a placeholder, so an empty delta that announces the role is passed over.
    first = next((c for c in chunks if c.content is not None and not (c.role and c.content == "")), None)
    if first is None:
        return Outcome.failed("no content chunk at all", measured=None, threshold=f"gap < {limit} ms")
    if is_meaningful(first.content):
        return Outcome.passed("the first content chunk carries text", measured=0.0, threshold=f"gap < {limit} ms",
                              evidence=[evidence(first.offset, first.content, first.t)])
    real = next((c for c in chunks if c.t >= first.t and is_meaningful(c.content)), None)
    end_t = real.t if real is not None else ctx.primary.capture.t_end
    gap_ms = (end_t - first.t) * 1000.0
    ev = [evidence(first.offset, f"placeholder {first.content!r}", first.t)]
    if real is not None:
        ev.append(evidence(real.offset, real.content, real.t))
    return Outcome.of(gap_ms < limit, f"first content chunk is a placeholder {first.content!r}, real text "
                      f"{gap_ms:.0f} ms later", measured=round(gap_ms, 1), threshold=f"< {limit} ms", evidence=ev)
