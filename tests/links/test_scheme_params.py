"""LinkSchemeParams: bad link descriptions fail with a ConfigError naming the field; each scheme's
timeline (who acts when, which herald frames go where and when, how long a communication qubit is
busy, the cadence closed form) worked out by hand for a 2 km + 3 km link."""

from __future__ import annotations

import pytest

from qnode_fw.errors import ConfigError
from qnode_fw.units import FIBRE_DELAY_PS_PER_KM, US
from timing.schemes import EndRole, HeraldHop, LinkEndParams, LinkScheme, LinkSchemeParams

D2, D3 = 2 * FIBRE_DELAY_PS_PER_KM, 3 * FIBRE_DELAY_PS_PER_KM
H, G = 1 * US, 500_000  # herald delay, guard (defaults)


def link(scheme, station, km=(2.0, 3.0), **kw):
    return LinkSchemeParams("A-B", scheme, station,
                            (LinkEndParams("A", 0, km[0]), LinkEndParams("B", 0, km[1])),
                            period_ps=kw.pop("period_ps", 10 * US), **kw)


@pytest.mark.parametrize("build, field, words", [
    (lambda: link("teleport", "S"), "links.A-B.scheme", "unknown link scheme"),
    (lambda: link(LinkScheme.BOTH_ENDPOINTS, "A"), "links.A-B.station", "needs a station between"),
    (lambda: link(LinkScheme.AT_SOURCE, "S"), "links.A-B.station", "heralded by its receiving end"),
    (lambda: link(LinkScheme.AT_SOURCE, "B", km=(2.0, 3.0)), "links.A-B.fibre_km", "disagree"),
    (lambda: link(LinkScheme.MIDPOINT_SOURCE, "S", guard_ps=1_000), "links.A-B.guard_ps", "cover"),
    (lambda: link(LinkScheme.MIDPOINT_SOURCE, "S", herald_delay_ps=1_000), "links.A-B.herald_delay_ps",
     "half the window"),
    (lambda: link(LinkScheme.MIDPOINT_SOURCE, "S", period_ps=0), "links.A-B.period_ps", "positive"),
    (lambda: link(LinkScheme.MIDPOINT_SOURCE, "S", km=(-1.0, 3.0)), "links.A-B.ends[0].fibre_km", ">= 0"),
])
def test_bad_link_descriptions_name_the_field(build, field, words):
    with pytest.raises(ConfigError, match=words) as err:
        build()
    assert err.value.field == field


def test_both_endpoints_timeline():
    p = link(LinkScheme.BOTH_ENDPOINTS, "bsa")
    assert [p.role(i) for i in (0, 1)] == [EndRole.EMIT, EndRole.EMIT]
    assert [p.action_offset_ps(i) for i in (0, 1)] == [-D2, -D3]  # photons meet at the BSA at t_k
    assert p.herald_hops() == [HeraldHop("bsa", "A", H, H + D2, "psi+|psi-|failure"),
                               HeraldHop("bsa", "B", H, H + D3, "psi+|psi-|failure")]
    assert [p.busy_ps(i) for i in (0, 1)] == [2 * D2 + H, 2 * D3 + H]
    assert [p.slots_per_attempt(i) for i in (0, 1)] == [(2 * D2 + H) // (10 * US) + 1, (2 * D3 + H) // (10 * US) + 1]


def test_midpoint_source_timeline():
    p = link(LinkScheme.MIDPOINT_SOURCE, "epps")
    assert [p.role(i) for i in (0, 1)] == [EndRole.ABSORB, EndRole.ABSORB]
    assert [p.action_offset_ps(i) for i in (0, 1)] == [D2 - G, D3 - G]
    # each end reports its own absorption to the other, over both fibres
    assert p.herald_hops() == [HeraldHop("A", "B", D2 + H, D2 + H + D2 + D3, "success|failure (own absorption)"),
                               HeraldHop("B", "A", D3 + H, D3 + H + D2 + D3, "success|failure (own absorption)")]
    # A knows when B's report arrives; B knows when A's arrives (after its own detection)
    assert p.outcome_known_ps(0) == D3 + H + D2 + D3
    assert p.outcome_known_ps(1) == D2 + H + D2 + D3
    assert p.busy_ps(0) == p.outcome_known_ps(0) - (D2 - G)
    assert p.herald_origin(0) == p.herald_origin(1) == "epps"


def test_at_source_timeline_and_cadence_closed_form():
    p = link(LinkScheme.AT_SOURCE, "B", km=(2.0, 0.0))
    assert p.emitter_index == 0
    assert [p.role(i) for i in (0, 1)] == [EndRole.EMIT, EndRole.ABSORB]
    assert [p.action_offset_ps(i) for i in (0, 1)] == [-D2, -G]
    assert p.herald_hops() == [HeraldHop("B", "A", H, H + D2, "success|failure")]
    assert [p.busy_ps(i) for i in (0, 1)] == [2 * D2 + H, G + H]
    c = p.slots_per_attempt(0)
    assert c == (2 * D2 + H) // (10 * US) + 1 == 3 and p.slots_per_attempt(1) == 1
    # one qubit at the emitter limits it to every c-th slot; the receiver keeps up
    assert p.joint_attempt_fraction((1, 1)) == pytest.approx(1 / c)
    assert p.joint_attempt_fraction((2, 1)) == pytest.approx(2 / 3)  # two of every three slots
    assert p.joint_attempt_fraction((3, 1)) == 1.0
    assert p.pair_rate_hz(0.3, (1, 1)) == pytest.approx(0.3 / c / 10e-6)
    both = link(LinkScheme.BOTH_ENDPOINTS, "bsa", km=(2.0, 3.0), period_ps=4 * US)
    with pytest.raises(ValueError, match="no closed form"):
        both.joint_attempt_fraction((1, 1))  # both limited, with different cadences
