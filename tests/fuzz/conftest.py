"""Hypothesis settings for the fuzz tests.

``QNODE_FUZZ=ci`` (the default) gives each fuzz test the number of examples it names, sized so
that all of them together take a few seconds in ``make test``; ``QNODE_FUZZ=deep`` runs 50 times
as many for a soak before a release.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SCALE = {"ci": 1, "deep": 50}[os.environ.get("QNODE_FUZZ", "ci")]


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples * _SCALE, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
