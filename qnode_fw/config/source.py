"""YAML documents that remember where every value came from.

PyYAML's safe loader forgets line numbers. A person fixing a config needs them, so this loader
composes the YAML node graph itself and builds plain Python data (dicts, lists, scalars) together
with an *origin map*: for every path into the data (``("links", 0, "fibre_km")``) the file and line
where it was written. Validation (:mod:`.validate`) looks an error's field path up in that map.

Two things PyYAML would do silently are errors here: a key written twice in one mapping, and
anything but plain data (no Python tags, no anchors/aliases, which hide where a value came from).

Includes: a mapping may carry ``include: [relative/path.yaml, ...]``. Each included file is a
mapping merged *under* the including one (the including file's own keys win, nested mappings are
merged key by key), so a node file can include a calibration file written by a run and still
override any value. Origins of merged values keep pointing at the file they came from.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

Path_ = tuple[str | int, ...]
"""A path into a document's data: mapping keys and list indices."""


@dataclass(frozen=True, slots=True)
class Origin:
    file: str
    line: int           # 1-based


@dataclass
class Document:
    """Plain data loaded from YAML, with the origin of every value in it."""

    data: Any
    file: str
    origins: dict[Path_, Origin] = field(default_factory=dict)

    def origin(self, path: Path_) -> Origin:
        """Where ``path`` (or the nearest enclosing value that exists) was written."""
        path = tuple(path)
        while path not in self.origins and path:
            path = path[:-1]
        return self.origins.get(path, Origin(self.file, 1))

    def sub(self, path: Path_) -> "Document":
        """The document rooted at ``path`` (for validating one part of a file on its own)."""
        data = self.data
        for key in path:
            data = data[key]
        n = len(path)
        origins = {p[n:]: o for p, o in self.origins.items() if p[:n] == tuple(path)}
        return Document(data, self.origin(path).file, origins)

    def error(self, path: Path_, message: str, expected: str | None = None) -> ConfigError:
        o = self.origin(path)
        return ConfigError(message, file=o.file, line=o.line, field=format_path(path) or None,
                           expected=expected)


def format_path(path: Path_) -> str:
    """``("nodes", 1, "links", 0, "fibre_km")`` → ``nodes[1].links[0].fibre_km``."""
    out = ""
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += f".{key}" if out else str(key)
    return out


# -- composing ------------------------------------------------------------------------------

_SCALAR_RESOLVER = yaml.SafeLoader  # plain-data tag resolution (int, float, bool, null, str)


def _construct(node: yaml.Node, path: Path_, file: str, origins: dict[Path_, Origin]) -> Any:
    origins[path] = Origin(file, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError("a mapping key must be a plain string", file=file,
                                  line=key_node.start_mark.line + 1, field=format_path(path) or None)
            key = key_node.value
            if key in out:
                raise ConfigError(f"key {key!r} appears twice in one mapping", file=file,
                                  line=key_node.start_mark.line + 1,
                                  field=format_path(path + (key,)),
                                  expected="each key once")
            out[key] = _construct(value_node, path + (key,), file, origins)
            # A missing-field error points at the key's own line, not the value's.
            origins[path + (key,)] = Origin(file, key_node.start_mark.line + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), file, origins) for i, item in enumerate(node.value)]
    if node.tag.startswith("tag:yaml.org,2002:"):
        loader = yaml.SafeLoader("")
        try:
            return loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise ConfigError(f"bad value: {exc.problem}", file=file, line=node.start_mark.line + 1,
                              field=format_path(path) or None) from exc
        finally:
            loader.dispose()
    raise ConfigError(f"YAML tag {node.tag!r} is not allowed in a configuration", file=file,
                      line=node.start_mark.line + 1, field=format_path(path) or None,
                      expected="plain YAML data")


def _compose(text: str, file: str) -> yaml.Node | None:
    try:
        loader = yaml.SafeLoader(text)
        try:
            for token_event in _events_with_aliases(loader):
                raise ConfigError("YAML anchors and aliases are not allowed in a configuration",
                                  file=file, line=token_event.start_mark.line + 1,
                                  expected="each value written out where it applies")
        finally:
            loader.dispose()
        loader = yaml.SafeLoader(text)
        try:
            return loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"YAML syntax error: {exc.problem or exc.context}", file=file,
                          line=line, expected="valid YAML") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", file=file, expected="valid YAML") from exc


def _events_with_aliases(loader: yaml.SafeLoader) -> Iterator[yaml.Event]:
    while loader.check_event():
        ev = loader.get_event()
        if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None):
            yield ev


def parse_yaml(text: str, file: str = "<string>") -> Document:
    """Parse YAML text (no includes) into a :class:`Document`."""
    node = _compose(text, file)
    origins: dict[Path_, Origin] = {}
    if node is None:
        return Document({}, file, {(): Origin(file, 1)})
    data = _construct(node, (), file, origins)
    return Document(data, file, origins)


def load_document(path: str | Path, *, _stack: tuple[Path, ...] = ()) -> Document:
    """Load a YAML file, resolving ``include:`` lists relative to the file."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("file not found", file=file, expected="an existing YAML file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file: {exc}", file=file) from exc
    doc = parse_yaml(text, file)
    if isinstance(doc.data, dict) and "include" in doc.data:
        doc = _resolve_includes(doc, path, _stack + (path.resolve(),))
    return doc


def _resolve_includes(doc: Document, path: Path, stack: tuple[Path, ...]) -> Document:
    includes = doc.data.pop("include")
    if isinstance(includes, str):
        includes = [includes]
        doc.origins[("include", 0)] = doc.origins[("include",)]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise doc.error(("include",), "include must list file paths", expected="a list of paths")
    merged_data: dict[str, Any] = {}
    merged_origins: dict[Path_, Origin] = {}
    for i, rel in enumerate(includes):
        target = (path.parent / rel)
        if target.resolve() in stack:
            raise doc.error(("include", i), f"include cycle through {rel}",
                            expected="includes that do not include each other")
        if not target.is_file():
            raise doc.error(("include", i), f"included file {rel} not found (looked in {target})",
                            expected="a path relative to the including file")
        inc = load_document(target, _stack=stack)
        if not isinstance(inc.data, dict):
            raise inc.error((), "an included file must be a mapping", expected="key: value pairs")
        _merge(merged_data, merged_origins, inc.data, inc.origins, ())
    own_origins = {p: o for p, o in doc.origins.items() if not (p and p[0] == "include")}
    _merge(merged_data, merged_origins, doc.data, own_origins, ())
    merged_origins[()] = doc.origins[()]
    return Document(merged_data, doc.file, merged_origins)


def _merge(into: dict, into_origins: dict[Path_, Origin], src: dict, src_origins: dict[Path_, Origin],
           prefix: Path_) -> None:
    """Merge ``src`` (rooted at ``prefix``) over ``into``: mappings key by key, anything else replaced."""
    for key, value in src.items():
        p = prefix + (key,)
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], into_origins, value, src_origins, p)
            if p in src_origins:
                into_origins[p] = src_origins[p]
            continue
        into[key] = copy.deepcopy(value)
        for q in [q for q in into_origins if q[:len(p)] == p]:
            del into_origins[q]
        for q, o in src_origins.items():
            if q[:len(p)] == p:
                into_origins[q] = o


def merge_overrides(doc: Document, overrides: Document) -> Document:
    """``doc`` with ``overrides`` merged over it (testbed per-node overrides)."""
    data: dict[str, Any] = {}
    origins: dict[Path_, Origin] = {}
    _merge(data, origins, doc.data, doc.origins, ())
    _merge(data, origins, overrides.data, overrides.origins, ())
    origins[()] = doc.origins.get((), Origin(doc.file, 1))
    return Document(data, doc.file, origins)
