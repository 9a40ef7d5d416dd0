"""Fuzzing the RuleSet loader and the configuration loader.

RuleSets: real documents (the project's chain RuleSets, purification included, and the QuISP
import) mutated at every level, arbitrary JSON and arbitrary text; the only failure is a
RuleSetError, and whatever loads passes or fails the install checks with a RuleSetError too.
Configuration: arbitrary YAML text and mutated node and testbed documents through
``parse_yaml`` and ``parse_model``; the only failure is a ConfigError naming a line.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from fuzz_inputs import fuzz, json_values
from qnode_fw.config import NodeConfig, TestbedConfig, parse_model, parse_yaml
from qnode_fw.errors import ConfigError, RuleSetError
from qnode_fw.ruleset.builders import chain_rulesets
from qnode_fw.ruleset.checks import check_ruleset
from qnode_fw.ruleset.loader import parse_document
from qnode_fw.ruleset.serialise import from_yaml, to_dict

REPO = Path(__file__).resolve().parents[2]
PATH = ["A", "B", "C", "D"]
RULESETS = [to_dict(rs) for rounds in (0, 1) for rs in
            chain_rulesets(PATH, ruleset_id="c1", connection="c1", purification_rounds=rounds).values()]
QUISP = json.loads((REPO / "configs/rulesets/quisp_swap_3node.json").read_text())


def _paths(value, prefix=()):
    """Every path to a mapping or list inside ``value``."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _mutated(doc) -> st.SearchStrategy:
    """``doc`` with one value anywhere in it replaced, or one key deleted or added."""
    paths = list(_paths(doc))

    def apply(choice):
        path, op, new = choice
        out = copy.deepcopy(doc)
        parent = out
        for key in path[:-1]:
            parent = parent[key]
        if not path:
            return new
        last = path[-1]
        if op == "replace":
            parent[last] = new
        elif op == "delete" and isinstance(parent, dict):
            del parent[last]
        elif isinstance(parent[last], dict):
            parent[last][str(new)[:8]] = new
        return out

    return st.tuples(st.sampled_from(paths), st.sampled_from(["replace", "delete", "add"]),
                     json_values).map(apply)


def load_and_check(data) -> None:
    try:
        _, sets = parse_document(data)
    except RuleSetError as exc:
        assert str(exc)
        return
    for rs in sets:
        try:
            check_ruleset(rs, PATH)
        except RuleSetError as exc:
            assert exc.ruleset is not None or exc.field


@fuzz(100)
@given(data=st.sampled_from(RULESETS).flatmap(_mutated))
def test_mutated_native_rulesets(data):
    load_and_check(data)


@fuzz(100)
@given(data=_mutated(QUISP) | json_values)
def test_mutated_quisp_rulesets_and_arbitrary_json(data):
    load_and_check(data)


@fuzz(100)
@given(text=st.text(max_size=300) | st.sampled_from(RULESETS).map(yaml.safe_dump).flatmap(
    lambda t: st.tuples(st.integers(0, len(t)), st.text(max_size=6)).map(
        lambda cut: t[:cut[0]] + cut[1] + t[cut[0] + 1:])))
def test_ruleset_yaml_text(text):
    try:
        from_yaml(text)
    except RuleSetError as exc:
        assert exc.field or exc.ruleset


NODE = parse_yaml((REPO / "configs/nodes/chain3/B.yaml").read_text()).data
TESTBED = {"name": "tb", "seed": 3, "nodes": [copy.deepcopy(NODE)], "topology": [["A", "B"]]}


def _config_error_names_a_line(exc: ConfigError) -> None:
    for e in getattr(exc, "errors", [exc]):
        assert e.file and e.line is not None and e.line >= 1, str(e)


@fuzz(150)
@given(text=st.text(max_size=300))
def test_arbitrary_yaml_text_through_parse_yaml(text):
    try:
        doc = parse_yaml(text, "fuzz.yaml")
    except ConfigError as exc:
        assert exc.file == "fuzz.yaml"
        return
    for model in (NodeConfig, TestbedConfig):
        try:
            parse_model(model, doc)
        except ConfigError as exc:
            _config_error_names_a_line(exc)


@fuzz(60)
@given(which=st.sampled_from(["node", "testbed"]), data=st.data())
def test_mutated_node_and_testbed_documents(which, data):
    base = NODE if which == "node" else TESTBED
    value = data.draw(_mutated(base))
    text = yaml.safe_dump(value, sort_keys=False)
    doc = parse_yaml(text, "fuzz.yaml")     # safe_dump writes plain data: always parses
    try:
        parse_model(NodeConfig if which == "node" else TestbedConfig, doc)
    except ConfigError as exc:
        _config_error_names_a_line(exc)


def test_unknown_key_that_looks_like_a_tag_is_named():
    # Found by atheris: a key with "[" in it made the error report itself raise IndexError.
    with pytest.raises(ConfigError) as info:
        parse_model(NodeConfig, parse_yaml("-:[:", "fuzz.yaml"))
    assert "unknown key '-:['" in str(info.value)
