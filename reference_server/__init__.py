"""The reference server: a correct OpenAI-compatible streaming endpoint with switchable faults.

Modules: `app` (Starlette app, validation -> stream -> fault), `validate` (request -> ChatRequest or OpenAI error),
`generate` (deterministic prompt-relevant text), `chunks` (chunk/SSE/NDJSON encoding), `stream` (one response's
primitives), `faults` (one function per fault mode), `pacer` + `fastwrite` (one timer writes every stream's paced
events), `lateness` (emission lateness histogram), `upstream` (`--upstream` relay), `embedded` (in-process server
on a free loopback port), `cli` (`streamconform serve`), `rawclient` (raw reader used by its tests and benchmark).
`protocols/` speaks the other wire protocols (OpenAI Responses, Anthropic Messages, Ollama, Gemini) and Chat
Completions tool calls and reasoning: one module each, the same answer, pacing and faults.
"""
