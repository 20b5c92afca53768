"""clients.ollama_python: the official ``ollama`` package reads the stream.

``client.chat(stream=True)`` (text from ``message.content``) for ``/api/chat``,
``client.generate(stream=True)`` (text from ``response``) for ``/api/generate``; the host is the endpoint's
URL without that path. The SDK is built on ``httpx``: its client gets the tapped transport."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from harness.clients import tap
from harness.clients.sdk import SdkRunner


class OllamaRunner(SdkRunner):
    distribution = "ollama"
    http_module = "ollama._client"

    def setup(self) -> None:
        import ollama

        self.ollama = ollama

    def run(self, timeout: float) -> dict[str, Any]:
        self.timeout = timeout
        return super().run(timeout)

    def deltas(self, http: Any) -> Iterator[str | None]:
        generate = self.base_url("/api/generate")
        host = generate or self.base_url("/api/chat")
        if host is None:
            raise ValueError(f"{self.url} is not an Ollama /api/chat or /api/generate URL")
        client = self.ollama.Client(host=host, headers=self.headers,
                                    transport=tap.transport(self.recorder, self.mod), timeout=self.timeout,
                                    trust_env=False,
                                    follow_redirects=bool(self.job.get("follow_redirects")))
        body = {k: v for k, v in self.body.items() if k != "stream"}
        model, options = body.pop("model", ""), body.pop("options", None)
        if generate is not None:
            parts = client.generate(model=model, prompt=body.pop("prompt", ""), stream=True, options=options)
            for part in parts:
                yield part.response
        else:
            messages = body.pop("messages", [])
            for part in client.chat(model=model, messages=messages, stream=True, options=options):
                yield part.message.content if part.message is not None else None


def prepare(job: dict[str, Any]) -> OllamaRunner:
    return OllamaRunner(job)
