"""Strategies for hostile input shared by the fuzz tests (and the atheris harness)."""

from __future__ import annotations

import json

from hypothesis import strategies as st

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
#: Any JSON-like value: what a peer can put in a message body.
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=5),
                           max_leaves=25)


def mutate(valid: dict) -> st.SearchStrategy:
    """``valid`` with one key dropped, replaced by any value, or added."""
    keys = sorted(valid)

    def drop(k):
        return {x: v for x, v in valid.items() if x != k}

    return st.one_of(
        st.sampled_from(keys).map(drop),
        st.tuples(st.sampled_from(keys), json_values).map(lambda kv: {**valid, kv[0]: kv[1]}),
        st.tuples(st.text(max_size=8), json_values).map(lambda kv: {**valid, kv[0]: kv[1]}),
    )


def dumps(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()
