"""clients.openai_node and clients.vercel_ai: Node SDKs read the stream (harness/clients/node/client.mjs).

In the client's subprocess (harness/clients/child.py) this starts ``node`` on the shipped script, in the same
process group (so the run's deadline kill reaches it), relays the job and the "go", and hands back the script's
result. Node runs without an address-space limit (V8 reserves far more than it uses) and with a bounded heap
instead; the script stops reading at the client's byte cap, so a flood stays bounded too.

    openai_node  the official ``openai`` npm package: chat.completions.create / responses.create, stream: true
    vercel_ai    the Vercel AI SDK (``ai``): streamText over ``@ai-sdk/openai-compatible`` (Chat Completions) or
                 ``@ai-sdk/openai``'s responses model, text from ``fullStream``'s text-delta parts
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from typing import Any

from harness.clients import node_runtime

# V8's old-space limit for a client: an SDK and one stream fit in a fraction of it.
HEAP_MB = 384
_READY_TIMEOUT_S = 30.0
# Time for the script to report after its own timer fired (it aborts the request and writes the result).
_REPORT_GRACE_S = 3.0


class NodeRunner:
    def __init__(self, job: dict[str, Any]) -> None:
        node = node_runtime.find_node()
        if node is None:
            raise RuntimeError("Node.js not found")
        script = node_runtime.script()
        self.proc = subprocess.Popen([node, f"--max-old-space-size={HEAP_MB}", str(script)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=script.parent,
                                     text=True, encoding="utf-8", errors="replace")
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read_lines, daemon=True).start()
        self._write(job)
        ready = self._line(_READY_TIMEOUT_S)
        if ready is None or not ready.get("ready"):
            why = (ready or {}).get("error") or self._ended()
            self.close()
            raise RuntimeError(str(why))

    def _read_lines(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _write(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def _line(self, timeout: float) -> dict[str, Any] | None:
        try:
            line = self.lines.get(timeout=max(0.01, timeout))
        except queue.Empty:
            return None
        return json.loads(line) if line and line.strip() else None

    def _ended(self) -> str:
        try:
            code = self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "node did not answer"
        return f"node ended (exit status {code}); its stderr is above"

    def run(self, timeout: float) -> dict[str, Any]:
        self._write({"go": True, "timeout": timeout})
        try:
            result = self._line(timeout + _REPORT_GRACE_S)
        except json.JSONDecodeError as exc:
            result = {"read": False, "text": "", "error_type": "crash",
                      "error": f"the Node client's result could not be read ({exc})"}
        if result is None:
            result = {"read": False, "text": "", "first_text_ms": None, "error_type": "crash",
                      "error": f"the Node client gave no result: {self._ended()}"}
        return result

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass


def prepare(job: dict[str, Any]) -> NodeRunner:
    return NodeRunner(job)
