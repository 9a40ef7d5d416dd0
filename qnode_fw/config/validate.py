"""Validating a :class:`~.source.Document` against a pydantic model, with errors that say where.

pydantic reports each problem with a location tuple (``("links", 0, "fibre_km")``) and a type
(``missing``, ``extra_forbidden``, ``greater_than_equal`` ...). Here each becomes a
:class:`~qnode_fw.errors.ConfigError` carrying the file and line from the document's origin map,
the dotted field path, and what would have been accepted. All problems in one file are reported
together, so a person fixes them in one pass.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

from ..errors import ConfigError, ConfigErrors
from .source import Document, Path_, format_path

M = TypeVar("M", bound=pydantic.BaseModel)

#: What to tell a person for pydantic's error types whose message does not already say it.
_EXPECTED = {
    "missing": "this field to be present",
    "extra_forbidden": "only the documented keys (check the spelling)",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping of key: value",
    "model_type": "a mapping of key: value",
    "model_attributes_type": "a mapping of key: value",
}


def _clean_loc(loc: tuple) -> Path_:
    # pydantic puts the tag of a tagged/union member into the location; drop what is not in the data.
    return tuple(p for p in loc if isinstance(p, int) or not (isinstance(p, str) and
                                                               (p.startswith("function-") or "[" in p)))


def _expected(err: dict[str, Any]) -> str | None:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in ("greater_than_equal",):
        return f"a value >= {ctx.get('ge')}"
    if kind in ("greater_than",):
        return f"a value > {ctx.get('gt')}"
    if kind in ("less_than_equal",):
        return f"a value <= {ctx.get('le')}"
    if kind in ("less_than",):
        return f"a value < {ctx.get('lt')}"
    if kind in ("literal_error", "enum"):
        return f"one of {ctx.get('expected')}"
    if kind == "string_pattern_mismatch":
        return f"text matching {ctx.get('pattern')}"
    if kind == "value_error":
        return None
    return _EXPECTED.get(kind)


def errors_from_pydantic(exc: pydantic.ValidationError, doc: Document) -> list[ConfigError]:
    out = []
    for err in exc.errors(include_url=False):
        path = _clean_loc(err["loc"])
        message = err["msg"]
        if err["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            # The raw location: a key the user wrote may itself look like a tag ("a[b").
            message = f"unknown key {err['loc'][-1]!r}"
        elif err["type"] == "missing":
            message = "required field is missing"
        o = doc.origin(path)
        out.append(ConfigError(message, file=o.file, line=o.line, field=format_path(path) or None,
                               expected=_expected(err)))
    return out


def parse_model(model: type[M], doc: Document, *, context: dict[str, Any] | None = None) -> M:
    """Validate ``doc.data`` as ``model``; raise :class:`ConfigErrors` naming file, line and field."""
    try:
        return model.model_validate(doc.data, context=context)
    except pydantic.ValidationError as exc:
        raise ConfigErrors(errors_from_pydantic(exc, doc)) from None
