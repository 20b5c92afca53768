"""``harness.sse`` as the README documents it (``harness.sse.SSEParser``): the parser lives in harness/parse/."""

from harness.parse.sse import SSEParser
from harness.parse.sse_base import DEFAULT_MAX_LINE_BYTES, FINDINGS_LISTED_PER_CODE, SSEEvent

__all__ = ["DEFAULT_MAX_LINE_BYTES", "FINDINGS_LISTED_PER_CODE", "SSEEvent", "SSEParser"]
