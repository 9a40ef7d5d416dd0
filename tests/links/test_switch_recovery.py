"""A switched transceiver whose optical switch stops answering for a while (timing.switched with
timing.recovery): the switch stays where it was, the transceiver goes on attempting on that route,
the outage's first error comes out of the loop once, the switch is commanded again after the
backoff, and once it answers the transceiver alternates between the links again without ever
commanding the switch during an attempt's window."""

from __future__ import annotations

from chain_harness import ChainSettings, build_chain
from qnode_fw.config.faults import InstrumentFault
from qnode_fw.errors import InstrumentTimeout
from qnode_fw.faults.instruments import InstrumentFaultShim
from qnode_fw.rng import RandomStreams
from qnode_fw.units import MS
from timing.switched import SwitchPolicy, SwitchPolicyKind, check_switch_log


def test_a_switch_outage_pauses_switching_and_the_transceiver_comes_back():
    s = ChainSettings()
    chain = build_chain("switched", seed=5, repeater_ruleset=False,
                        policy=SwitchPolicy(("AB", "BC"), SwitchPolicyKind.ROUND_ROBIN, 2))
    t = chain.transceiver
    chain.run(2 * MS)
    before = len(chain.switch.command_log)
    assert before > 10
    shim = InstrumentFaultShim(chain.switch, RandomStreams(1).get("faults"))
    shim.arm(InstrumentFault(node="B", instrument="switch", fault="timeout", count=3,
                             command="connect"))
    errors = []
    while True:
        try:
            chain.run(12 * MS)
            break
        except InstrumentTimeout as exc:
            errors.append(exc)
    assert len(errors) == 1 and errors[0].retrying is t.retry
    assert t.retry.recoveries == 1 and t.retry.total_retries == 2
    log = chain.switch.command_log
    gap = max(b[0] - a[0] for a, b in zip(log[before - 1:], log[before:]))
    # three failed commands, 1, 2 and 4 ms apart, then the one that worked 7 ms after the first
    # (which came a turn of two attempts after the last command that worked)
    assert 7 * MS <= gap <= 8 * MS
    assert len(log) > before + 10
    # attempts went on during the outage, on the route the switch kept
    during = [w for w in t.windows if log[before - 1][0] < w.start_ps < log[before - 1][0] + gap]
    assert during and len({w.link for w in during}) == 1
    assert check_switch_log(log, t.windows, {"AB": 1, "BC": 2}, 1, s.switching_time_ps) == []
