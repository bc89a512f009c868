"""Machine output as `az` prints it: `-o json|table|tsv` and `--query` (JMESPath) over the command's document.

Rules (those of az/knack, so that az users can reuse what they know):
- `-o json` prints the document (or the query's result) as JSON, in the document's key order. `--query` with the
  default `-o text` prints the result as JSON too: az's default output is JSON, and text has no form for an
  arbitrary result. A query that selects nothing (null) prints nothing, in any format.
- `-o table` without `--query` prints the command's own rows (as az's table transformers do); with `--query`,
  a list of objects becomes one row each, with the keys (first letter capitalised) as headers, skipping `id`,
  `type`, `etag`, nulls and nested values; a list of scalars is a `Result` column; a list of lists `Column1..`.
- `-o tsv` prints no header: one line per list item, an object's values tab-separated in key order, a nested
  list as its length, a nested object as an empty field, a scalar as it is (a top-level boolean in lower case).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Rows", "compile_query", "format_doc", "is_machine", "print_doc", "table", "tsv"]

Rows = Callable[[Any], list[dict[str, Any]]]  # the command's natural rows, taken from its JSON document
_SKIP_KEYS = ("id", "type", "etag")  # az's auto-table leaves these out


def is_machine(args: argparse.Namespace) -> bool:
    """True when stdout must hold one document and nothing else: -o json, table or tsv, or a --query."""
    return getattr(args, "output", "text") != "text" or bool(getattr(args, "query", None))


def compile_query(text: str) -> Any:
    """The compiled JMESPath expression; BadInput (one line, exit 2) if it does not parse or calls an unknown
    function or a function with the wrong number of arguments (checked now, before any request)."""
    import jmespath
    from jmespath import exceptions
    from jmespath.functions import Functions

    from remediations.errors import BadInput

    try:
        compiled = jmespath.compile(text)
    except exceptions.JMESPathError as e:
        why = ("incomplete expression" if isinstance(e, exceptions.IncompleteExpressionError)
               else getattr(e, "message", None) or getattr(e, "msg", None) or str(e))
        pos = getattr(e, "lex_position", None)
        at = f" at character {pos + 1}" if isinstance(pos, int) else ""
        raise BadInput(f"--query {text!r}: not a valid JMESPath expression: {' '.join(str(why).split())}{at}"
                       ) from None
    table: dict[str, Any] = Functions.FUNCTION_TABLE
    nodes = [compiled.parsed]
    while nodes:
        node = nodes.pop()
        if not isinstance(node, dict):
            continue
        nodes += node.get("children", [])
        if node.get("type") != "function_expression":
            continue
        name, given = node.get("value"), len(node.get("children", []))
        if name not in table:
            raise BadInput(f"--query {text!r}: unknown JMESPath function {name}()")
        signature = table[name]["signature"]
        variadic = bool(signature) and signature[-1].get("variadic", False)
        if given < len(signature) or (given > len(signature) and not variadic):
            want = f"at least {len(signature)}" if variadic else str(len(signature))
            raise BadInput(f"--query {text!r}: {name}() takes {want} argument(s), got {given}")
    return compiled


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return str(value)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as az's `-o table` (tabulate's "simple" format): headers, dashes, left-aligned columns at least two
    wider than their header; "" when there is no row."""
    headers: list[str] = []
    for row in rows:
        headers += [k for k in row if k not in headers]
    if not headers:
        return ""
    cells = [[_cell(row.get(h)) for h in headers] for row in rows]
    widths = [max([len(h) + 2] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]  # tabulate's padding

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(c) for c in cells)]) + "\n"


def _auto_row(item: Any) -> dict[str, Any]:
    """One query result item as a table row, as az's auto-table does."""
    if isinstance(item, dict):
        return {(k[:1].upper() + k[1:]): v for k, v in item.items()
                if k not in _SKIP_KEYS and v is not None and not isinstance(v, (list, dict))}
    if isinstance(item, list):
        return {f"Column{i}": v for i, v in enumerate(item, 1)}
    return {"Result": item}


def _tsv_field(value: Any) -> str:
    if isinstance(value, list):
        return str(len(value))
    if isinstance(value, dict):
        return ""
    return value if isinstance(value, str) else str(value)


def tsv(result: Any) -> str:
    """A value as az's `-o tsv`: no header; a line per list item; an object's or a list's values tab-separated."""
    out: list[str] = []
    for item in result if isinstance(result, list) else [result]:
        if isinstance(item, dict):
            out.append("\t".join(_tsv_field(v) for v in item.values()))
        elif isinstance(item, list):
            out.append("\t".join(_tsv_field(v) for v in item))
        elif isinstance(item, bool):
            out.append(str(item).lower())
        else:
            out.append(_tsv_field(item))
    return "".join(line + "\n" for line in out)


def format_doc(doc: Any, output: str, query: str | None = None, rows: Rows | None = None) -> str:
    """The text printed for `doc` under `output` (json, table, tsv; text only with a query), after `query`."""
    from remediations.errors import RemediationError

    from .render import dumps

    if not query and (output == "json" or rows is None):
        return dumps(doc) + "\n"  # (text without a query never comes here: the command prints its own text)
    doc = json.loads(dumps(doc))  # the very document -o json prints (tuples as arrays, times as strings)
    if query:
        from jmespath.exceptions import JMESPathError

        try:
            result = compile_query(query).search(doc)
        except JMESPathError as e:  # e.g. a function given the wrong type: found only on the document
            raise RemediationError(f"--query: {' '.join(str(e).split())}; the command ran, but its result "
                                   "cannot be shown this way") from None
        if result is None:
            return ""  # as az: a query that selects nothing prints nothing
        if output == "table":
            auto = [_auto_row(item) for item in (result if isinstance(result, list) else [result])]
            if auto and not any(auto):
                raise RemediationError("-o table: the query's result has only nested values; pick fields, "
                                       "e.g. --query \"vms[].{vm: vm, status: status}\"")
            return table(auto)
        return tsv(result) if output == "tsv" else dumps(result) + "\n"
    assert rows is not None
    natural = rows(doc)
    if output == "table":
        return table(natural)
    return tsv(natural)


def print_doc(args: argparse.Namespace, doc: Any, rows: Rows | None = None) -> None:
    """Print the command's one document on stdout in the chosen format (see the module's rules)."""
    sys.stdout.write(format_doc(doc, args.output, getattr(args, "query", None), rows))
    sys.stdout.flush()
