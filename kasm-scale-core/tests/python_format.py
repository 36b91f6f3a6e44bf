"""Formats templates with CPython, for the differential test of the Rust renderer.

stdin: one JSON object per line: {"template": str, "vars": {name: str or null}}
stdout: one JSON object per line: {"ok": str} or {"error": "ExceptionName", "message": str}
"""
import json
import sys

for line in sys.stdin:
    case = json.loads(line)
    try:
        out = {"ok": case["template"].format(**case["vars"])}
    except Exception as e:  # noqa: BLE001 - every exception is an answer here
        out = {"error": type(e).__name__, "message": str(e) if not isinstance(e, KeyError) else repr(e.args[0])}
    sys.stdout.write(json.dumps(out) + "\n")
