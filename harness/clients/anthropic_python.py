"""clients.anthropic_python: the official ``anthropic`` package reads the stream.

``client.messages.create(stream=True)``, text from ``content_block_delta`` events with a ``text_delta``. The
base URL is the endpoint's URL without ``/v1/messages``; another path is read with ``client.post(...,
stream=True)`` and the SDK's own stream class. Retries are off: the request is sent once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from harness.clients.sdk import SdkRunner


class AnthropicRunner(SdkRunner):
    distribution = "anthropic"
    http_module = "anthropic._base_client"

    def setup(self) -> None:
        import anthropic

        self.anthropic = anthropic

    def deltas(self, http: Any) -> Iterator[str | None]:
        anthropic = self.anthropic
        base = self.base_url("/v1/messages")
        headers: dict[str, Any] = dict(self.headers)
        if self.header("x-api-key") is None:
            headers["X-Api-Key"] = anthropic.Omit()  # the run sent no credentials: neither does the SDK
        if self.header("authorization") is None:
            headers["Authorization"] = anthropic.Omit()
        client = anthropic.Anthropic(api_key="streamconform-unused", base_url=base or self.url,
                                     http_client=http, max_retries=0)
        body = {k: v for k, v in self.body.items() if k != "stream"}
        if base is None:
            from anthropic import Stream
            from anthropic.types import Message, RawMessageStreamEvent

            stream = client.post(self.url, body={**body, "stream": True}, cast_to=Message, stream=True,
                                 stream_cls=Stream[RawMessageStreamEvent], options={"headers": headers})
        else:
            stream = client.messages.create(model=body.pop("model", ""),
                                            max_tokens=body.pop("max_tokens", 1024),
                                            messages=body.pop("messages", []), stream=True,
                                            extra_body=body or None, extra_headers=headers)
        for event in stream:
            is_delta = getattr(event, "type", None) == "content_block_delta"
            delta = getattr(event, "delta", None) if is_delta else None
            yield delta.text if getattr(delta, "type", None) == "text_delta" else None


def prepare(job: dict[str, Any]) -> AnthropicRunner:
    return AnthropicRunner(job)
