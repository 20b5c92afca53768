"""Token-count methods. Every token figure the harness prints names the method that produced it.

Why ``chars/4`` is the default: the harness must work against any endpoint with no model files and no network,
and for English text BPE vocabularies (GPT, Llama) average about four characters per token, so ``ceil(chars / 4)``
is a stable, reproducible proxy. The alternatives:

    chars/4   ceil(len(text) / 4)                         default; no dependencies
    words     whitespace-separated words                  under-counts BPE tokens by ~25 %
    chunks    content chunks received                     what "tokens/s" means for one-token-per-event servers
    usage     the server's usage.completion_tokens        exact for that server's tokenizer, when it reports one
    auto      usage when the server reports it, else chars/4  (the result names the method it used)
    tiktoken  cl100k_base, only when tiktoken and a locally cached encoding exist (never downloads)

(Peers: vLLM's benchmark counts with the model's own tokenizer; guidellm likewise, falling back to words.)
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import dataclass

METHODS = ("chars/4", "words", "chunks", "usage", "tiktoken", "auto")
DEFAULT_METHOD = "chars/4"
_TIKTOKEN_ENCODING = "cl100k_base"
_TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A token count and how it was obtained; ``tokens is None`` when the method cannot apply (see ``note``)."""

    tokens: int | None
    method: str
    note: str | None = None


def _chars4(text: str) -> int:
    return math.ceil(len(text) / 4)


def _tiktoken_encoder():
    """The cl100k_base encoder when it can be built without network access, else None."""
    try:
        import tiktoken  # optional
    except ImportError:
        return None
    # tiktoken caches encodings under sha1(url) in this directory; without the file it would download.
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), "data-gym-cache")
    cached = os.path.join(cache_dir, hashlib.sha1(_TIKTOKEN_URL.encode()).hexdigest())
    if not os.path.exists(cached):
        return None
    try:
        return tiktoken.get_encoding(_TIKTOKEN_ENCODING)
    except Exception:  # a corrupt cache or an incompatible tiktoken: treat as unavailable
        return None


def token_count(text: str, method: str = DEFAULT_METHOD, *, usage: dict | None = None,
                chunks: int = 0) -> TokenCount:
    """Count the tokens of ``text`` by ``method``; never raises for an inapplicable method (tokens=None)."""
    if method == "chars/4":
        return TokenCount(_chars4(text), method)
    if method == "words":
        return TokenCount(len(text.split()), method)
    if method == "chunks":
        return TokenCount(chunks, method)
    if method == "usage":
        value = (usage or {}).get("completion_tokens")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return TokenCount(value, method)
        return TokenCount(None, method, "the server reported no usage.completion_tokens")
    if method == "auto":
        exact = token_count(text, "usage", usage=usage)
        return exact if exact.tokens is not None else TokenCount(_chars4(text), "chars/4", "no usage reported")
    if method == "tiktoken":
        encoder = _tiktoken_encoder()
        if encoder is None:
            return TokenCount(None, method, "tiktoken or its cl100k_base encoding is not available locally")
        return TokenCount(len(encoder.encode(text, disallowed_special=())), method)
    raise ValueError(f"unknown token method {method!r} (one of {', '.join(METHODS)})")


def count_tokens(text: str, method: str = DEFAULT_METHOD, *, usage: dict | None = None, chunks: int = 0) -> int:
    """An int always (for aggregate statistics): falls back to chars/4 when the method cannot apply."""
    result = token_count(text, method, usage=usage, chunks=chunks)
    return result.tokens if result.tokens is not None else _chars4(text)
