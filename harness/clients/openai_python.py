"""clients.openai_python: the official ``openai`` package reads the stream, as an application would.

Chat Completions: ``client.chat.completions.create(stream=True)``, text from ``choices[0].delta.content``;
Responses: ``client.responses.create(stream=True)``, text from ``response.output_text.delta`` events. The base
URL is the endpoint's URL without the SDK's own path; an endpoint on another path (or with a query) is read
with the SDK's ``client.post(..., stream=True)`` and the same stream class, which is what ``create`` does
inside. Retries are off: the request is sent once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from harness.clients.sdk import SdkRunner


class OpenAIRunner(SdkRunner):
    distribution = "openai"
    http_module = "openai._base_client"

    def setup(self) -> None:
        import openai

        self.openai = openai

    def deltas(self, http: Any) -> Iterator[str | None]:
        openai = self.openai
        responses = self.job.get("dialect") == "openai-responses"
        suffix = "/responses" if responses else "/chat/completions"
        base = self.base_url(suffix)
        headers: dict[str, Any] = dict(self.headers)
        if self.header("authorization") is None:
            headers["Authorization"] = openai.Omit()  # the run sent no credentials: neither does the SDK
        client = openai.OpenAI(api_key="streamconform-unused", base_url=base or self.url, http_client=http,
                               max_retries=0)
        body = {k: v for k, v in self.body.items() if k != "stream"}
        if base is None:
            stream = self._posted(client, body, headers, responses)
        elif responses:
            stream = client.responses.create(model=body.pop("model", ""), input=body.pop("input", ""),
                                             stream=True, extra_body=body or None, extra_headers=headers)
        else:
            stream = client.chat.completions.create(model=body.pop("model", ""),
                                                    messages=body.pop("messages", []), stream=True,
                                                    extra_body=body or None, extra_headers=headers)
        for event in stream:
            yield _text(event, responses)

    def _posted(self, client: Any, body: dict[str, Any], headers: dict[str, Any], responses: bool) -> Any:
        from openai import Stream

        if responses:
            from openai.types.responses import Response, ResponseStreamEvent

            cast, item = Response, ResponseStreamEvent
        else:
            from openai.types.chat import ChatCompletion, ChatCompletionChunk

            cast, item = ChatCompletion, ChatCompletionChunk
        return client.post(self.url, body={**body, "stream": True}, cast_to=cast, stream=True,
                           stream_cls=Stream[item], options={"headers": headers})


def _text(event: Any, responses: bool) -> str | None:
    if responses:
        return event.delta if getattr(event, "type", None) == "response.output_text.delta" else None
    choices = getattr(event, "choices", None) or []
    return choices[0].delta.content if choices and choices[0].delta is not None else None


def prepare(job: dict[str, Any]) -> OpenAIRunner:
    return OpenAIRunner(job)
