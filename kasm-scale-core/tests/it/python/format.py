"""Formats templates with CPython, for the differential tests of the Rust renderer.

stdin: one JSON object per line: {"template": str, "vars": {name: str or null}}
stdout: one JSON object per line: {"ok": str}, or
        {"error": "ExceptionName", "message": str, "line": int, "column": int, "offset": int,
         "field_end": int or null, "nested": bool, "key": str or null}
        where line and column (1-based, in characters) and offset (0-based, in characters) are
        those of the brace where Python failed: the lone brace it rejected, or the `{` of the
        replacement field it failed on (of the field inside a nested format spec when expanding
        that spec failed: then nested is true). field_end is the offset after the `}` of a
        top-level field that failed (null for a rejected brace), key the name of a KeyError.
        line, column and offset are null when the failure could not be located; the Rust side
        then fails.

The location comes from CPython itself. `_string.formatter_parser` is the MarkupIterator that
`str.format` (and the expansion of a nested spec) runs, so Python fails at the first item that
fails either while being parsed (a syntax error, at the first brace after the previous item) or
when that field alone is formatted with the same variables (fields share no state in
`str.format` without positional arguments). A field of a nested spec is formatted inside a
wrapper field `{_k:FIELD}` whose value accepts any spec, so it runs at the same recursion depth.
"""
import _string
import json
import sys


class Blank:
    """A value that formats to nothing whatever the spec."""

    def __format__(self, spec):
        return ""


def describe(e):
    message = repr(e.args[0]) if isinstance(e, KeyError) else str(e)
    return type(e).__name__, message


def failure(call):
    try:
        call()
    except Exception as e:  # noqa: BLE001 - every exception is an answer here
        return describe(e)
    return None


def first_failure(text, variables, nested):
    """(offset, error, field end or None, nested) of the first item of `text` that fails."""
    off = 0
    items = _string.formatter_parser(text)
    while True:
        try:
            literal, name, spec, conversion = next(items)
        except StopIteration:
            return None
        except Exception as e:  # noqa: BLE001 - a syntax error of this item
            braces = [i for i in (text.find("{", off), text.find("}", off)) if i >= 0]
            return (min(braces) if braces else None), describe(e), None, nested
        if name is None:
            # Literal text; an escaped brace ends it ("{{" yields "{" and skips the second one).
            off += len(literal) + (1 if literal[-1:] in ("{", "}") else 0)
            continue
        start = off + len(literal)
        i = start + 1 + len(name)
        if text[i] == "!":
            i += 2
        has_spec = text[i] == ":"
        end = i + 1 + (len(spec) + 1 if has_spec else 0)
        field = text[start:end]
        if nested:
            error = failure(lambda: ("{_k:" + field + "}").format(_k=Blank(), **variables))
            if error is not None:
                return start, error, end, True
        else:
            error = failure(lambda: field.format(**variables))
            if error is not None:
                head = text[start:i] + "}"
                if has_spec and "{" in spec and failure(lambda: head.format(**variables)) is None:
                    # The name and conversion are fine: expanding the spec, or formatting
                    # with it, failed.
                    inner = first_failure(spec, variables, nested=True)
                    if inner is not None and inner[0] is not None:
                        return i + 1 + inner[0], inner[1], None, True
                return start, error, end, False
        off = end


def line_column(text, offset):
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


for line in sys.stdin:
    case = json.loads(line)
    template, variables = case["template"], case["vars"]
    try:
        out = {"ok": template.format(**variables)}
    except Exception as e:  # noqa: BLE001 - every exception is an answer here
        kind, message = describe(e)
        out = {"error": kind, "message": message, "line": None, "column": None, "offset": None}
        out["key"] = e.args[0] if isinstance(e, KeyError) else None
        located = first_failure(template, variables, nested=False)
        if located is not None and located[0] is not None and located[1] == (kind, message):
            out["line"], out["column"] = line_column(template, located[0])
            out["offset"], out["field_end"], out["nested"] = located[0], located[2], located[3]
    sys.stdout.write(json.dumps(out) + "\n")
