"""The at_source and midpoint_source link schemes from YAML through the experiment runner.

``configs/experiments/at-source-link.yaml`` and ``midpoint-source-link.yaml`` run link-level
pairs (a two-node path: the connection delivers each heralded pair to the applications at A and
B) on the two-node testbeds whose node files give each link's scheme, fibre, attempt timing and
simulated photonics. The closed forms are computed here from the node files' figures and
10^(−0.02·L) (docs/links.md):

* at_source: p = 1 − (1 − d)(1 − h·η), η = collection · fibre · transfer; every heralded pair
  has the link fidelity (a dark-count herald, ~1e-4 expected in the run, would have 1/4);
* midpoint_source: P = A² − A·B·(G(q_a) + G(q_b)) + B²·G(q_a q_b) for the thermal source,
  G(s) = 1/(1 + μ(1 − s)); a fraction 1 − P_ent/P of the heralds leave the memories unentangled
  (the memories took photons of different pairs): they are false heralds, not wrong pairs, and
  have Bell fidelity 1/4.

Both ends attempt once per cycle of c = ⌊busy/T⌋ + 1 slots (one communication qubit each), so
the heralded rate is p/(c·T); both are checked within 3σ, and so is the delivered pair rate.
"""

from __future__ import annotations

import math

import numpy as np

from exp_helpers import REPO, within_binomial
from qnode_fw.experiments import RunOptions, run_experiment
from qnode_fw.units import FIBRE_DELAY_PS_PER_KM, NS, US

COLLECTION, TRANSFER, HERALD_EFFICIENCY, DARK_HZ = 0.8, 0.7, 0.9, 100.0
WINDOW = 2 * NS
HERALD_DELAY, GUARD = 1_300_000, 600_000
LINK_F = 0.93


def fibre(km: float) -> float:
    return 10 ** (-0.2 * km / 10)


def dark() -> float:
    return -math.expm1(-DARK_HZ * WINDOW * 1e-12)


def delay(km: float) -> int:
    return round(km * FIBRE_DELAY_PS_PER_KM)


def run_link(name: str):
    result = run_experiment(REPO / "configs/experiments" / f"{name}.yaml", options=RunOptions())
    (link,) = result.experiment.links.links.values()
    return result, link


def check_cadence_and_rates(result, link, p: float, cycle: int, period: int) -> None:
    """Every cycle of the run has a joint attempt, heralds per joint attempt and per second
    within 3σ of the closed forms, and the delivered rate within 3σ of p/(c·T)."""
    # The ends keep their latest attempts only: the link counts joint attempts as they happen.
    # One in every cycle from the first to the last: as many as cycles between them (the ends act
    # only in their grid's slots, at most once a cycle each), the latest ones each a cycle apart.
    n, first, last = link.joint_attempts(), link.first_joint, link.last_joint
    assert n == (last - first) // cycle + 1 and (last - first) % cycle == 0
    a, b = ({k for k, _t, _q in end.attempts} for end in link.ends.values())
    assert set(np.diff(sorted(a & b)).tolist()) == {cycle}
    joint = [first, last]
    heralds = result.results.details["links"][link.name]["heralds"]
    assert within_binomial(heralds, n, p), (heralds, n, p)
    span_s = (joint[-1] - joint[0] + cycle) * period * 1e-12
    rate = p / (cycle * period * 1e-12)
    sigma = math.sqrt(n * p * (1 - p)) / span_s
    assert abs(heralds / span_s - rate) <= 3 * sigma, (heralds / span_s, rate, sigma)
    s = result.summary
    assert s.pairs_delivered == heralds
    gen = result.results.details["generation_time_s"]
    assert abs(s.rate_hz - rate) <= 3 * math.sqrt(rate * gen * (1 - p)) / gen + 2 / gen


def test_at_source_link_from_yaml_heralds_at_the_closed_form_rate():
    result, link = run_link("at-source-link")
    s, d = result.summary, result.results.details
    assert link.scheme == "at_source" and link.station == "B"   # B's QNIC is the receiver
    assert s.wrong_pairs == 0 and s.leaked_qubits == 0
    eta = COLLECTION * fibre(10.0) * TRANSFER
    p = 1 - (1 - dark()) * (1 - HERALD_EFFICIENCY * eta)
    period = 25 * US
    busy = 2 * delay(10.0) + HERALD_DELAY        # the emitter: photon out, herald back
    cycle = busy // period + 1
    assert cycle == 4
    check_cadence_and_rates(result, link, p, cycle, period)
    # a pair is ready at the receiver at once and at the emitter one fibre delay later
    assert d["links"]["A-B"]["pairs_ready"] == {"A": s.pairs_delivered, "B": s.pairs_delivered}
    assert d["false_heralds"] == 0
    fids = np.array([row[3] for row in result.experiment.rows])
    np.testing.assert_allclose(fids, LINK_F, atol=1e-9)


def test_midpoint_source_link_from_yaml_heralds_at_the_closed_form_rate():
    result, link = run_link("midpoint-source-link")
    s, d = result.summary, result.results.details
    assert link.scheme == "midpoint_source" and link.station == "epps"
    assert s.wrong_pairs == 0 and s.leaked_qubits == 0
    mu = 0.3
    q = 1 - COLLECTION * fibre(5.0) * TRANSFER
    a = 1 - (1 - dark()) * (1 - HERALD_EFFICIENCY)
    b = (1 - dark()) * HERALD_EFFICIENCY
    g = lambda x: 1 / (1 + mu * (1 - x))  # noqa: E731
    p = a * a - 2 * a * b * g(q) + b * b * g(q * q)
    r = mu / (1 + mu)
    p_ent = a * a / (1 + mu) * (2 * math.log(1 - r * q) - math.log(1 - r) - math.log(1 - r * q * q))
    period = 20 * US
    busy = 2 * delay(5.0) + HERALD_DELAY + GUARD   # armed g early, the partner's outcome via the EPPS
    cycle = busy // period + 1
    assert cycle == 3
    check_cadence_and_rates(result, link, p, cycle, period)
    # heralds the physics cannot tell from good ones: the memories took photons of two pairs
    fids = np.array([row[3] for row in result.experiment.rows])
    false = np.isclose(fids, 0.25, atol=1e-9)
    assert np.all(false | np.isclose(fids, LINK_F, atol=1e-9))
    assert false.sum() == d["false_heralds"] == d["links"]["A-B"]["false_heralds"]
    assert within_binomial(int(false.sum()), fids.size, 1 - p_ent / p)
