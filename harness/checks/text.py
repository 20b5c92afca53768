"""Small text measures for the content checks: key terms, coverage, shingles, repetition. Pure and stdlib-only.

Deliberately simple and explainable (a grader must be able to say why an answer failed): lower-cased words,
a stopword list that also drops prompt boilerplate ("explain", "describe", "words"...), and a crude suffix
stemmer so "volcanoes" and "volcano" or "eruptions" and "eruption" meet.
"""

from __future__ import annotations

import functools
import re
import zlib

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers him
his how i if in into is it its itself just me more most my no nor not now of off on once only or other others our
out over own same she should so some such than that the their them then there these they this those through to too
under until up very was we were what when where which while who whom why will with would you your yours
explain describe tell write give show list discuss outline summarise summarize please answer question words word
paragraph paragraphs sentence sentences short long brief detail detailed least most many much one two three role
""".split())
_SUFFIXES = ("ations", "ation", "ings", "ing", "ness", "ments", "ment", "ies", "ied", "ers", "er", "es", "ed", "ly",
             "s")


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


@functools.lru_cache(maxsize=1 << 16)  # grading calls this ~1,600 times per submission on a small vocabulary
def stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def key_terms(prompt: str) -> set[str]:
    """Stems of the prompt's content words: not stopwords, not numbers, at least 3 letters."""
    return {stem(w) for w in words(prompt) if len(w) >= 3 and w not in STOPWORDS and not w.isdigit()}


def coverage(answer: str, prompt: str) -> float:
    """Share of the prompt's key terms found in the answer (0.0 when the prompt has none)."""
    terms = key_terms(prompt)
    if not terms:
        return 0.0
    answer_stems = {stem(w) for w in words(answer)}
    return len(terms & answer_stems) / len(terms)


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1)]


def copied_share(answer: str, prompt: str, n: int = 3) -> float:
    """Share of the answer's word n-grams that also occur in the prompt (1.0: the answer only repeats it)."""
    p_words = words(prompt)
    n = max(1, min(n, len(p_words)))
    grams = ngrams(words(answer), n)
    if not grams:
        return 0.0
    prompt_grams = set(ngrams(p_words, n))
    return sum(g in prompt_grams for g in grams) / len(grams)


def jaccard(a: str, b: str, n: int = 3) -> float:
    """Jaccard similarity of the two texts' word n-gram sets (1.0: same phrases)."""
    sa, sb = set(ngrams(words(a), n)), set(ngrams(words(b), n))
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def compression_ratio(text: str) -> float:
    """zlib-compressed size / raw size: repeated text compresses far better than prose (~0.04 vs ~0.45)."""
    raw = text.encode("utf-8")
    return len(zlib.compress(raw, 9)) / len(raw) if raw else 1.0


def duplicate_ngram_share(text: str, n: int = 5) -> float:
    """Share of word n-grams that repeat an earlier one (0.0 for prose, ~1.0 for a block repeated many times)."""
    grams = ngrams(words(text), n)
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)
