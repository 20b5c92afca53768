"""clients.google_genai: the ``google-genai`` package reads a Gemini stream.

``client.models.generate_content_stream(model, contents)``, text from each chunk's ``.text``. The base URL and
the API version come from the endpoint's URL (``BASE/v1beta/models/MODEL:streamGenerateContent``). The SDK
needs a key to send: the run's ``x-goog-api-key`` when it has one, a placeholder otherwise (a server that
ignores keys, as one the harness read without a key does, is not affected)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from harness.clients.sdk import SdkRunner

_PATH = re.compile(r"^(?P<base>.*)/(?P<version>v1|v1beta|v1alpha)/models/(?P<model>[^/:]+)"
                   r":streamGenerateContent$")


class GenaiRunner(SdkRunner):
    distribution = "google-genai"
    http_module = "google.genai._api_client"

    def setup(self) -> None:
        from google import genai
        from google.genai import types

        self.genai, self.types = genai, types

    def deltas(self, http: Any) -> Iterator[str | None]:
        parts = urlsplit(self.url)
        match = _PATH.match(parts.path)
        if match is None:
            raise ValueError(f"{self.url} is not a Gemini .../models/MODEL:streamGenerateContent URL")
        base = urlunsplit((parts.scheme, parts.netloc, match["base"] or "/", "", ""))
        key = self.header("x-goog-api-key") or "streamconform-unused"
        headers = {k: v for k, v in self.headers.items() if k.lower() != "x-goog-api-key"}
        types = self.types
        options = types.HttpOptions(base_url=base, api_version=match["version"], headers=headers,
                                    httpx_client=http)
        client = self.genai.Client(api_key=key, http_options=options)
        generation = self.body.get("generationConfig") or {}
        config = types.GenerateContentConfig(max_output_tokens=generation["maxOutputTokens"]) \
            if generation.get("maxOutputTokens") else None
        stream = client.models.generate_content_stream(model=match["model"],
                                                       contents=self.body.get("contents"), config=config)
        for chunk in stream:
            yield _text(chunk)


def _text(chunk: Any) -> str | None:
    """The chunk's answer text (thought parts left out, as ``.text`` does, without its warning)."""
    for candidate in (getattr(chunk, "candidates", None) or [])[:1]:
        content = getattr(candidate, "content", None)
        texts = [p.text for p in (getattr(content, "parts", None) or [])
                 if isinstance(getattr(p, "text", None), str) and not getattr(p, "thought", False)]
        return "".join(texts) or None
    return None


def prepare(job: dict[str, Any]) -> GenaiRunner:
    return GenaiRunner(job)
