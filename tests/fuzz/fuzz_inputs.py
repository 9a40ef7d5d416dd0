"""Strategies for hostile input shared by the fuzz tests, and their settings.

``QNODE_FUZZ=ci`` (the default) gives each fuzz test the number of examples it names, sized so
that all of them together take a few seconds in ``make test``; ``QNODE_FUZZ=deep`` runs 50 times
as many for a soak before a release.
"""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_SCALE = {"ci": 1, "deep": 50}[os.environ.get("QNODE_FUZZ", "ci")]


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples * _SCALE, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


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
