"""The testbed YAML: which nodes make up a testbed, the topology, the keys, per-node overrides.

::

    name: chain-3node-sim
    seed: 7
    nodes:
      - file: ../nodes/chain3/A.yaml           # by path, relative to this file
      - file: ../nodes/chain3/B.yaml
        overrides: {qnics: [{address: 0, qubits: 8}]}
      - address: bsa-AB                        # or inline
        role: BSA
        control: {endpoint: "tcp://127.0.0.1:5611"}
    topology:                                  # optional: must match the nodes' own links
      - [A, B]
    keys_dir: ../keys/chain3                   # public keys <address>.key (qnode keys generate)

Overrides merge over the node file key by key (mappings merged, lists and scalars replaced).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from ..errors import ConfigError, ConfigErrors
from .checks import check_node, check_testbed
from .node import NAME_PATTERN, NodeConfig, Strict
from .source import Document, load_document, merge_overrides
from .validate import parse_model


class TestbedConfig(Strict):
    __test__ = False   # not a pytest test class, whatever its name says

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    seed: int = 1
    nodes: list[NodeConfig] = Field(min_length=1)
    topology: list[tuple[str, str]] | None = None
    keys_dir: str | None = None

    def node(self, address: str) -> NodeConfig:
        for n in self.nodes:
            if n.address == address:
                return n
        raise KeyError(address)

    @property
    def addresses(self) -> list[str]:
        return [n.address for n in self.nodes]

    def quantum_links(self) -> list[tuple[str, str]]:
        """Every link once, as a sorted pair of node addresses, in declaration order."""
        out: list[tuple[str, str]] = []
        for n in self.nodes:
            for l in n.links:
                key = tuple(sorted((n.address, l.neighbour)))
                if key not in out:
                    out.append(key)  # type: ignore[arg-type]
        return out


@dataclass(frozen=True)
class LoadedTestbed:
    """A validated testbed, the document it came from (for origins), and its directory."""

    config: TestbedConfig
    document: Document
    base_dir: Path
    #: Each node's document (by address): where its values came from, for relative paths.
    node_documents: dict[str, Document]

    def resolve(self, relative: str) -> Path:
        return (self.base_dir / relative).resolve()

    def resolve_for_node(self, address: str, relative: str) -> Path:
        """A path written in a node's file, relative to that file."""
        return (Path(self.node_documents[address].file).parent / relative).resolve()


def _node_entry(doc: Document, i: int, base: Path) -> Document:
    """The node document for ``nodes[i]``: the referenced file with overrides, or the inline one."""
    entry = doc.data["nodes"][i]
    if not isinstance(entry, dict) or "file" not in entry:
        return doc.sub(("nodes", i))
    unknown = set(entry) - {"file", "overrides"}
    if unknown:
        raise doc.error(("nodes", i, sorted(unknown)[0]), f"unknown key {sorted(unknown)[0]!r} "
                        "beside file:", expected="file and optionally overrides")
    rel = entry["file"]
    if not isinstance(rel, str):
        raise doc.error(("nodes", i, "file"), "file must be a path", expected="a path string")
    target = base / rel
    if not target.is_file():
        raise doc.error(("nodes", i, "file"), f"node file {rel} not found (looked in {target})",
                        expected="a path relative to the testbed file")
    node_doc = load_document(target)
    if "overrides" in entry:
        over = doc.sub(("nodes", i, "overrides"))
        if not isinstance(over.data, dict):
            raise doc.error(("nodes", i, "overrides"), "overrides must be a mapping",
                            expected="key: value pairs merged over the node file")
        node_doc = merge_overrides(node_doc, over)
    return node_doc


def load_testbed(path: str | Path) -> LoadedTestbed:
    """Load, validate and cross-check a testbed file and every node file it names."""
    path = Path(path)
    doc = load_document(path)
    if not isinstance(doc.data, dict):
        raise doc.error((), "a testbed file must be a mapping", expected="name:, nodes: ...")
    nodes = doc.data.get("nodes")
    errors: list[ConfigError] = []
    node_docs: list[Document] = []
    if isinstance(nodes, list):
        for i in range(len(nodes)):
            try:
                node_docs.append(_node_entry(doc, i, path.parent))
            except ConfigErrors as exc:
                errors.extend(exc.errors)
            except ConfigError as exc:
                errors.append(exc)
    if errors:
        raise ConfigErrors(errors)
    # Validate node by node so every error points into the file the node came from.
    configs: list[NodeConfig] = []
    for nd in node_docs:
        try:
            configs.append(parse_model(NodeConfig, nd))
        except ConfigErrors as exc:
            errors.extend(exc.errors)
    rest = {k: v for k, v in doc.data.items() if k != "nodes"} if isinstance(nodes, list) else doc.data
    try:
        shell = parse_model(TestbedConfig, Document({**rest, "nodes": [_PLACEHOLDER]}
                                                    if isinstance(nodes, list) else rest,
                                                    doc.file, doc.origins))
    except ConfigErrors as exc:
        errors.extend(e for e in exc.errors if not (e.field or "").startswith("nodes["))
        shell = None
    if errors:
        raise ConfigErrors(errors)
    assert shell is not None
    config = shell.model_copy(update={"nodes": configs})
    for nd, cfg in zip(node_docs, configs):
        errors.extend(check_node(nd, cfg))
    errors.extend(check_testbed(doc, node_docs, config, path.parent))
    if errors:
        raise ConfigErrors(errors)
    return LoadedTestbed(config, doc, path.parent,
                         {c.address: d for c, d in zip(configs, node_docs)})


_PLACEHOLDER: dict[str, Any] = {"address": "placeholder", "role": "COMP",
                                "control": {"endpoint": "inproc://placeholder"}}


def load_node(path: str | Path) -> tuple[NodeConfig, Document]:
    """Load and check one node file on its own (its links are checked against a testbed later)."""
    doc = load_document(path)
    config = parse_model(NodeConfig, doc)
    errors = check_node(doc, config)
    if errors:
        raise ConfigErrors(errors)
    return config, doc
