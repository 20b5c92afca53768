"""Deterministic, prompt-relevant text without a model.

The answer is woven from the prompt's key terms and a pool of sentence templates, drawn by a random generator
seeded with a hash of the prompt: the same prompt always gives the same text, two prompts give clearly different
text (other terms, other template order), and the text does not repeat itself (each template is used once before
any is reused, with varied fillers), so relevance, echo, canned and padding checks see a plausible answer.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator

_STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be because been before being below between both
    but by can could did do does doing down during each explain few for from further give had has have having he her
    here hers him his how i if in into is it its itself just let like me more most my no nor not now of off on once
    only or other our out over own please same say she should show so some such tell than that the their them then
    there these they this those through to too under until up use very was we were what when where which while who
    whom why will with would write you your yours describe short long brief answer question words word paragraph""".split()
)
_WORD = re.compile(r"[^\W\d_][\w'-]*", re.UNICODE)

_TEMPLATES = (
    "{A} is best understood by starting from what it is meant to achieve.",
    "A useful first step is to separate {a} from the details that surround it.",
    "Most discussions of {a} return sooner or later to {b}.",
    "When people first meet {a}, they often underestimate how much {b} shapes it.",
    "In practice, {a} and {b} tend to be learned together rather than one after the other.",
    "One {adj} way to look at {a} is as a set of trade-offs rather than a single rule.",
    "The history of {a} shows a steady shift from rough habits toward {adj} methods.",
    "Experts who work with {a} every day usually {verb} {b} before anything else.",
    "It helps to ask what would change if {a} were taken away entirely.",
    "A common mistake is to treat {b} as a side issue when it sits at the centre of {a}.",
    "Small examples make {a} much easier to reason about than abstract definitions.",
    "Seen from a distance, {a} looks simple; up close, {b} adds {adj} detail.",
    "Good explanations of {a} connect it to things the reader already knows.",
    "There is no single authority on {a}, so comparing several sources pays off.",
    "Measuring {a} carefully often reveals that {b} matters more than expected.",
    "Teams that {verb} {a} early tend to avoid costly surprises later on.",
    "The vocabulary around {a} can be confusing, but the core ideas are few.",
    "Anyone curious about {a} can learn a great deal by trying it on a small scale.",
    "Over time, {a} has picked up {adj} conventions that newcomers should know.",
    "The link between {a} and {b} becomes clear once both are described in plain words.",
    "Critics of {a} point out limits that supporters of {b} sometimes ignore.",
    "A balanced view of {a} keeps both its strengths and its costs in sight.",
    "Questions about {a} rarely have one answer, because context changes the outcome.",
    "Whoever wants to {verb} {a} should first settle what success would look like.",
    "Even a {adj} summary of {a} should mention how it relates to {b}.",
    "Writing down assumptions about {a} makes later disagreements easier to resolve.",
    "The future of {a} will likely depend on how {b} develops in the coming years.",
    "Practical guides to {a} usually begin with {b} and build outward from there.",
    "Reflecting on {a} this way leaves a clearer picture than a list of facts would.",
    "In short, {a} rewards patience, and {b} is a good place to begin.",
)
_ADJECTIVES = ("careful", "practical", "structured", "patient", "deliberate", "systematic", "thoughtful", "modest")
_VERBS = ("examine", "study", "map out", "question", "review", "sketch", "explore", "test")


def key_terms(prompt: str, limit: int = 6) -> list[str]:
    """The prompt's content words, most distinctive first (longest, then first seen), lower-cased, no repeats."""
    seen: dict[str, int] = {}
    for i, word in enumerate(_WORD.findall(prompt)):
        w = word.strip("'-").lower()
        if len(w) >= 3 and w not in _STOPWORDS and w not in seen:
            seen[w] = i
    ranked = sorted(seen, key=lambda w: (-min(len(w), 9), seen[w]))[:limit]
    return sorted(ranked, key=seen.__getitem__) or ["the topic"]


def _seed(prompt: str) -> int:
    return int.from_bytes(hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).digest()[:8], "big")


def iter_text(prompt: str, target_chars: int | float) -> Iterator[str]:
    """The answer as consecutive parts (a sentence and the space or paragraph break after it), generated lazily
    until at least `target_chars` are out; `math.inf` gives an endless answer."""
    rng = random.Random(_seed(prompt))
    terms = key_terms(prompt)
    total = 0
    deck: list[str] = []
    n = 0
    pending: str | None = None
    while total < target_chars:
        if not deck:
            deck = list(_TEMPLATES)
            rng.shuffle(deck)
        template = deck.pop()
        a = terms[n % len(terms)]
        b = terms[(n + 1 + rng.randrange(max(1, len(terms) - 1))) % len(terms)] if len(terms) > 1 else "its context"
        s = template.format(a=a, A=a[:1].upper() + a[1:], b=b, adj=rng.choice(_ADJECTIVES), verb=rng.choice(_VERBS))
        if pending is not None:
            # Paragraph breaks every few sentences make the text read like an answer, not a list.
            yield pending + ("\n\n" if n % 5 == 0 else " ")
        pending = s
        n += 1
        total += len(s) + 1
    if pending is not None:
        yield pending


def answer_text(prompt: str, target_chars: int) -> str:
    """Readable paragraphs about the prompt's key terms, at least `target_chars` long."""
    return "".join(iter_text(prompt, target_chars))


def chunk_size(total_chars: int | float, chunk_chars: int, min_chunks: int) -> int:
    """Preferred piece size: near `chunk_chars`, small enough for `min_chunks` pieces of `total_chars`."""
    if total_chars == math.inf:
        return max(1, chunk_chars)
    return max(1, min(chunk_chars, int(total_chars) // max(1, min_chunks)))


def iter_split(parts: Iterable[str], size: int) -> Iterator[str]:
    """Cut the concatenation of `parts` at word boundaries into pieces near `size`, lazily.

    The pieces concatenate back to the input exactly (spaces travel with the word before them); a piece ends at
    the first space past `size` unless that would make it much longer (a very long word is cut instead).
    """
    reach = max(2 * size, size + 20)  # how far past the start a cut may look for a space
    buf = ""
    source = iter(parts)
    exhausted = False
    while True:
        while not exhausted and len(buf) <= reach:
            try:
                buf += next(source)
            except StopIteration:
                exhausted = True
        if not buf:
            return
        end = min(len(buf), size)
        if end < len(buf):
            space = buf.find(" ", end, reach + 1)
            if space != -1:
                end = space + 1
        yield buf[:end]
        buf = buf[end:]


def split_chunks(text: str, chunk_chars: int, min_chunks: int) -> list[str]:
    """`text` cut into pieces near `chunk_chars` long (at least `min_chunks` when the text allows)."""
    return list(iter_split([text], chunk_size(len(text), chunk_chars, min_chunks)))


def iter_answer_pieces(prompt: str, target_chars: int | float, chunk_chars: int, min_chunks: int) -> Iterator[str]:
    """The answer's stream pieces, generated lazily (memory per stream stays small however long the answer)."""
    return iter_split(iter_text(prompt, target_chars), chunk_size(target_chars, chunk_chars, min_chunks))


class _AnswerCache:
    """Answers as (length, JSON string literal) per piece, least recently used first out, bounded by the total
    characters held (not by entry count), so long benchmark answers and many short ones both fit in a known budget."""

    def __init__(self, budget_chars: int):
        self.budget = budget_chars
        self.held = 0
        self.entries: OrderedDict[tuple, tuple[tuple[int, bytes], ...]] = OrderedDict()

    def get(self, key: tuple, make: Callable[[], Iterable[str]]) -> tuple[tuple[int, bytes], ...]:
        hit = self.entries.get(key)
        if hit is not None:
            self.entries.move_to_end(key)
            return hit
        value = tuple((len(p), json.dumps(p, ensure_ascii=False).encode()) for p in make())
        size = sum(n for n, _ in value)
        if size <= self.budget // 4:
            self.entries[key] = value
            self.held += size
            while self.held > self.budget:
                _, old = self.entries.popitem(last=False)
                self.held -= sum(n for n, _ in old)
        return value


_CACHE = _AnswerCache(8_000_000)
_CACHE_MAX_CHARS = 1_000_000  # longer answers are generated lazily, never held whole


def answer_json_pieces(prompt: str, target_chars: int | float, chunk_chars: int,
                       min_chunks: int) -> Iterator[tuple[int, bytes]]:
    """(length, the piece as a UTF-8 JSON string literal) per piece: the streaming hot path's form.

    The text is a pure function of its inputs, so answers of ordinary length come from a small cache: many streams
    asking the same thing (graders, benchmarks) share one copy instead of each paying for generation."""
    if target_chars <= _CACHE_MAX_CHARS:
        key = (prompt, int(target_chars), chunk_chars, min_chunks)
        return iter(_CACHE.get(key, lambda: iter_answer_pieces(prompt, target_chars, chunk_chars, min_chunks)))
    return ((len(p), json.dumps(p, ensure_ascii=False).encode())
            for p in iter_answer_pieces(prompt, target_chars, chunk_chars, min_chunks))


def answer_pieces(prompt: str, target_chars: int | float, chunk_chars: int, min_chunks: int) -> Iterator[str]:
    """The answer's pieces as text (the fault modes' form): generated afresh, they are not on the hot path."""
    return iter_answer_pieces(prompt, target_chars, chunk_chars, min_chunks)
