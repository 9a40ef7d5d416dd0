"""The three heralded link schemes end to end (sim photonics, tag streams decoded by the timing
layer, herald frames over an in-process herald link with fibre delays, PairBinder at both ends),
against each scheme's closed forms over a sweep of fibre lengths:

* heralded success probability per attempt: ½·η_a·η_b (both end points), 1 − (1−d)(1 − h·η)
  (at source), and the thermal-source form with G(s) = 1/(1 + μ(1−s)) (mid-point source), with η
  computed here from 10^(−0.02·L) and the efficiencies;
* pair rate: p · (joint attempts per slot) / period, with one communication qubit per end, whose
  cadence follows from the scheme's herald round trip (one attempt every ⌊busy/period⌋ + 1 slots);
* mean Bell fidelity of heralded pairs: F, or (P_ent·F + (P − P_ent)/4)/P for the thermal source;
* herald flow: every frame goes from the scheme's sender to its receiver and arrives exactly when
  the scheme's timeline says."""

from __future__ import annotations

import math

import numpy as np
import pytest

from link_harness import run_link
from qnode_fw.addresses import PairName
from qnode_fw.units import US
from sim_backend.link_schemes import SimLinkPhysics
from sim_backend.physics.detector import DetectorParams
from timing.frames import Outcome
from timing.schemes import LinkEndParams, LinkScheme, LinkSchemeParams

COLLECTION = 0.8
TRANSFER = 0.7
DETECTOR = DetectorParams(efficiency=0.9, dark_count_rate_hz=100.0)
FIDELITY = 0.93
WINDOW = 2_000


def transmission(km: float) -> float:
    return 10 ** (-0.2 * km / 10)


def closed_forms(scheme, km, mu):
    """(success probability, probability of an entangled herald) for the test's parameters."""
    h = DETECTOR.efficiency
    d = -math.expm1(-DETECTOR.dark_count_rate_hz * WINDOW * 1e-12)
    if scheme is LinkScheme.BOTH_ENDPOINTS:
        eta = [COLLECTION * transmission(k) * h for k in km]
        p = 0.5 * eta[0] * eta[1]
        return p, p
    if scheme is LinkScheme.AT_SOURCE:
        eta = COLLECTION * transmission(km[0]) * TRANSFER
        return 1 - (1 - d) * (1 - h * eta), eta * (1 - (1 - d) * (1 - h))
    # thermal source: P(n) = μ^n / (1+μ)^(n+1); end x heralds with A - B q^n, q = 1 - η
    q = [1 - COLLECTION * transmission(k) * TRANSFER for k in km]
    big_a, big_b = 1 - (1 - d) * (1 - h), (1 - d) * h
    g = lambda s: 1 / (1 + mu * (1 - s))  # noqa: E731
    p = big_a ** 2 - big_a * big_b * (g(q[0]) + g(q[1])) + big_b ** 2 * g(q[0] * q[1])
    r = mu / (1 + mu)
    same = (math.log(1 - r * q[0]) + math.log(1 - r * q[1]) - math.log(1 - r)
            - math.log(1 - r * q[0] * q[1]))
    return p, big_a ** 2 * same / (1 + mu)


CASES = [
    (LinkScheme.BOTH_ENDPOINTS, (0.0, 0.0), 0.0, 20 * US),
    (LinkScheme.BOTH_ENDPOINTS, (5.0, 5.0), 0.0, 20 * US),
    (LinkScheme.BOTH_ENDPOINTS, (12.5, 12.5), 0.0, 40 * US),
    (LinkScheme.AT_SOURCE, (0.0, 0.0), 0.0, 20 * US),
    (LinkScheme.AT_SOURCE, (10.0, 10.0), 0.0, 20 * US),
    (LinkScheme.AT_SOURCE, (25.0, 0.0), 0.0, 40 * US),
    (LinkScheme.MIDPOINT_SOURCE, (0.0, 0.0), 1.0, 20 * US),
    (LinkScheme.MIDPOINT_SOURCE, (5.0, 5.0), 0.3, 20 * US),
    (LinkScheme.MIDPOINT_SOURCE, (12.5, 12.5), 0.3, 40 * US),
]


@pytest.mark.parametrize("scheme, km, mu, period", CASES,
                         ids=[f"{s.value}-{k[0]}+{k[1]}km-mu{m}" for s, k, m, _ in CASES])
def test_success_probability_rate_fidelity_and_herald_flow(scheme, km, mu, period):
    physics = SimLinkPhysics(collection_efficiency=COLLECTION, transfer_efficiency=TRANSFER,
                             detector=DETECTOR, link_fidelity=FIDELITY, mean_pairs_per_attempt=mu)
    attempts = 1200 if scheme is not LinkScheme.MIDPOINT_SOURCE else 1600
    probe = LinkSchemeParams("A-B", scheme, {LinkScheme.AT_SOURCE: "B"}.get(scheme, "S"),
                             (LinkEndParams("A", 0, km[0]), LinkEndParams("B", 0, km[1])),
                             period_ps=period, guard_ps=600_000, herald_delay_ps=1_300_000)
    cadence = max(probe.slots_per_attempt(i) for i in (0, 1))
    run = run_link(scheme, km, period_ps=period, slots=attempts * cadence, physics=physics, seed=7)
    params = run.params

    # cadence: one communication qubit per end, one joint attempt every `cadence` slots
    fraction = params.joint_attempt_fraction((1, 1))
    assert fraction == pytest.approx(1 / cadence)
    limiting = max((0, 1), key=params.slots_per_attempt)
    ids = [k for k, _, _ in run.ends[limiting].attempts]
    assert set(np.diff(ids).tolist()) == {cadence}
    joint = run.joint_attempts()
    assert joint == set(ids)  # the other end always acted too
    n = len(joint)
    assert n >= attempts - 2

    # heralded success probability per attempt
    p, p_ent = closed_forms(scheme, params_km(params), mu)
    pairs = run.pairs()
    assert pairs <= joint
    assert abs(len(pairs) - n * p) <= 3 * math.sqrt(n * p * (1 - p)), (len(pairs), n * p)

    # pair rate against the scheme's closed form (the run's edges can add or cut one attempt)
    seconds = run.duration_ps * 1e-12
    expected_rate = params.pair_rate_hz(p, (1, 1))
    sigma = math.sqrt(expected_rate * seconds * (1 - p)) / seconds
    assert abs(len(pairs) / seconds - expected_rate) <= 3 * sigma + p / seconds

    # both ends bound the same pairs under the same names, after the scheme's station
    names = [{r.attempt_id: r.name for _, r in ready} for ready in run.ready]
    for k in pairs:
        assert names[0][k] == names[1][k]
        assert names[0][k].origin == params.station
        if scheme is LinkScheme.MIDPOINT_SOURCE:
            assert names[0][k] == PairName(params.station, params.slot_time_ps(k))
    # a pair is ready exactly when the scheme's timeline says both outcomes are known there
    for i in (0, 1):
        acted = {k: t for k, t, _ in run.ends[i].attempts}
        for t, r in run.ready[i]:
            assert t - acted[r.attempt_id] == params.busy_ps(i)

    # fidelity of the heralded pairs
    fids = np.array([run.fidelity[k] for k in sorted(pairs)])
    assert len(fids) == len(pairs)
    entangled = np.isclose(fids, FIDELITY, atol=1e-9)
    assert np.all(entangled | np.isclose(fids, 0.25, atol=1e-9))
    m = len(fids)
    f_ent = p_ent / p
    assert abs(entangled.sum() - m * f_ent) <= 3 * math.sqrt(m * f_ent * (1 - f_ent)) + 1e-9
    mean_closed = f_ent * FIDELITY + (1 - f_ent) / 4
    sd = (FIDELITY - 0.25) * math.sqrt(f_ent * (1 - f_ent) / m)
    assert abs(fids.mean() - mean_closed) <= 3 * sd + 1e-9

    # herald flow: who sent what to whom, and when
    hops = {(h.sender, h.receiver): h for h in params.herald_hops()}
    assert {(peer, node) for peer, node, *_ in run.frames} == set(hops)
    for peer, node, k, t, outcome in run.frames:
        assert t - params.slot_time_ps(k) == hops[(peer, node)].arrives_ps
        if scheme is LinkScheme.BOTH_ENDPOINTS:
            assert Outcome(outcome) in (Outcome.PSI_PLUS, Outcome.PSI_MINUS, Outcome.FAILURE)
        else:
            assert Outcome(outcome) in (Outcome.SUCCESS, Outcome.FAILURE)


def params_km(params):
    return tuple(e.fibre_km for e in params.ends)
