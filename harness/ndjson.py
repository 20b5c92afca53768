"""``harness.ndjson`` as the README documents it (``harness.ndjson.NDJSONParser``): the parser lives in
harness/parse/ndjson.py."""

from harness.parse.ndjson import NDJSONParser

__all__ = ["NDJSONParser"]
