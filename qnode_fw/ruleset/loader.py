"""Read a RuleSet file of either format: native (``schema: qnode-ruleset``, YAML or JSON) or
QuISP JSON; a file may hold one RuleSet or a list of them (the set for one connection)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ..errors import RuleSetError
from . import model as m
from .quisp import import_quisp, is_quisp
from .serialise import from_dict


def parse_document(data: Any, **quisp_options: Any) -> tuple[str, list[m.RuleSet]]:
    """Returns (format, RuleSets) where format is ``native`` or ``quisp``."""
    items = data if isinstance(data, list) else [data]
    if not items:
        raise RuleSetError("empty list of RuleSets", field="<document>")
    formats = {"quisp" if is_quisp(d) else "native" for d in items}
    if len(formats) != 1:
        raise RuleSetError("a file mixes native and QuISP RuleSets", field="<document>")
    fmt = formats.pop()
    out = []
    for i, d in enumerate(items):
        try:
            out.append(import_quisp(d, **quisp_options) if fmt == "quisp" else from_dict(d))
        except RuleSetError as exc:
            field = exc.field if len(items) == 1 else f"[{i}].{exc.field}"
            raise RuleSetError(exc.message, ruleset=exc.ruleset, rule=exc.rule,
                               field=field) from None
    return fmt, out


def load_file(path: str | Path, **quisp_options: Any) -> tuple[str, list[m.RuleSet]]:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise RuleSetError(f"{p}: cannot read: {exc.strerror}", field="<file>") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise RuleSetError(f"{p}: not {'JSON' if p.suffix == '.json' else 'YAML'}: {exc}",
                           field="<document>") from None
    try:
        return parse_document(data, **quisp_options)
    except RuleSetError as exc:
        raise RuleSetError(f"{p}: {exc.message}", ruleset=exc.ruleset, rule=exc.rule,
                           field=exc.field) from None
