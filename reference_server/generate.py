"""Deterministic, prompt-relevant text without a model.

The answer is woven from the prompt's key terms and a pool of sentence templates, drawn by a random generator
seeded with a hash of the prompt: the same prompt always gives the same text, two prompts give clearly different
text (other terms, other template order), and the text does not repeat itself (each template is used once before
any is reused, with varied fillers), so relevance, echo, canned and padding checks see a plausible answer.
"""

from __future__ import annotations

import hashlib
import random
import re

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


def answer_text(prompt: str, target_chars: int) -> str:
    """Readable paragraphs about the prompt's key terms, at least `target_chars` long."""
    rng = random.Random(_seed(prompt))
    terms = key_terms(prompt)
    sentences: list[str] = []
    total = 0
    deck: list[str] = []
    pair = 0
    while total < target_chars:
        if not deck:
            deck = list(_TEMPLATES)
            rng.shuffle(deck)
        template = deck.pop()
        a = terms[pair % len(terms)]
        b = terms[(pair + 1 + rng.randrange(max(1, len(terms) - 1))) % len(terms)] if len(terms) > 1 else "its context"
        pair += 1
        s = template.format(a=a, A=a[:1].upper() + a[1:], b=b, adj=rng.choice(_ADJECTIVES), verb=rng.choice(_VERBS))
        sentences.append(s)
        total += len(s) + 1
    # Paragraph breaks every few sentences make the text read like an answer, not a list.
    out: list[str] = []
    for i, s in enumerate(sentences):
        out.append(s)
        if i + 1 < len(sentences):
            out.append("\n\n" if (i + 1) % 5 == 0 else " ")
    return "".join(out)


def split_chunks(text: str, chunk_chars: int, min_chunks: int) -> list[str]:
    """Cut `text` at word boundaries into pieces near `chunk_chars` long, at least `min_chunks` when possible.

    The pieces concatenate back to `text` exactly (spaces travel with the word before them).
    """
    if not text:
        return []
    size = max(1, min(chunk_chars, len(text) // max(1, min_chunks)))
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            space = text.find(" ", end)
            if space != -1 and space - start < max(2 * size, size + 20):  # a long word may not make a giant chunk
                end = space + 1
        pieces.append(text[start:end])
        start = end
    return pieces
