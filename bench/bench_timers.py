"""Timers: how late the wall-clock runtime fires scheduled actions while it processes heralds, and
how many timers per second the virtual-clock loop fires.

Wall clock (the real-time figure for the node PC; hard timing stays in the instruments): an end
node's EventLoop on the WallClock runs an attempt schedule, one timer every 100 us (call_at on an
absolute grid, each recording its emission with the link's PairBinder), while a BSA station in
another process sends it a HERALD frame for every 5th attempt (2 k heralds/s) or for every
attempt (10 k/s) over a real ZeroMQ herald link, in batches every 1 ms as a tagger read would
deliver them. The node decodes, checks and binds every
herald to a PairReady on the same loop. Lateness = the loop's clock when the timer callback runs
minus the time it was due. Baseline, same run: the same schedule with no station (idle loop).

How the loop waits between timers (qnode_fw/loop.py): it sleeps on a timerfd until
``timer_slack_ps`` before the next timer and spins only that last stretch. Each load also runs
with a slack of 1 ms, longer than the 100 us period, which makes the loop spin all the time as
every loop did before the timerfd: the same-run baseline of the CPU share and of the herald
latency (station send -> node dispatch, both stamped on CLOCK_MONOTONIC), the figure a spinning
loop hurts by competing with its own process's ZeroMQ I/O thread.

Virtual clock: 10^6 timers across 3 nodes sharing one EventLoop on a VirtualClock, each node
keeping 100 timers pending with seeded random delays (1 ns .. 1 us). Baseline, same run: a bare
heapq scheduler (push/pop of (time, seq, callback) tuples) firing the same number of callbacks.
"""

from __future__ import annotations

import heapq
import itertools
import json
import resource
import subprocess
import sys
import time

import numpy as np

from qnode_fw.benchmarks import Figure, Reference

ATTEMPT_PERIOD_US = 100
HERALD_BATCH_MS = 1.0
STATION_LAG_US = 2_000   # the station heralds attempt k this long after its slot (fibre + read)
LINK = "A-B"


# -- wall clock: station process ----------------------------------------------------------------
def station_main(slots: int, stride: int) -> None:
    """Child: bind, wait for the node's start frame, then herald every ``stride``-th attempt of
    0 .. slots - 1 in 1 ms batches, and exit (so nothing is sent after the node has gone)."""
    import zmq

    from timing.frames import FrameType, Outcome
    from timing.herald_link import ZmqHeraldEndpoint

    ctx = zmq.Context()
    ep = ZmqHeraldEndpoint("bsa", LINK, bind="tcp://127.0.0.1:0", context=ctx)
    print(ep.address, flush=True)
    started: list[float] = []
    ep.subscribe(FrameType.SYNC_REQUEST, lambda peer, frame: started.append(time.perf_counter()))
    deadline = time.monotonic() + 10
    while not started and time.monotonic() < deadline:
        ep.poll(10)
    if not started:
        raise SystemExit("no start frame from the node")
    t0, k, period = started[0], 0, ATTEMPT_PERIOD_US * 1e-6
    outcomes = (Outcome.PSI_PLUS, Outcome.PSI_MINUS)
    while k < slots:
        due = min(slots - 1, int((time.perf_counter() - t0 - STATION_LAG_US * 1e-6) / period))
        while k <= due:
            if k % stride == 0:
                ep.send("A", FrameType.HERALD, k, int((k * period) * 1e12), outcomes[k & 1],
                        aux_ps=time.monotonic_ns() * 1000)   # sent at, for the latency
            k += 1
        time.sleep(HERALD_BATCH_MS / 1000)
    ep.close()
    ctx.term()


# -- wall clock: node ----------------------------------------------------------------------------
def _lateness(duration_s: float, herald_stride: int | None,
              timer_slack_ps: int | None = None) -> tuple[np.ndarray, dict]:
    """Lateness of every attempt timer (us); ``herald_stride`` None runs without a station;
    ``timer_slack_ps`` None is the loop's default."""
    import zmq

    from qnode_fw.addresses import QubitAddress
    from qnode_fw.clock import WallClock
    from qnode_fw.loop import EventLoop
    from qnode_fw.units import MS, US
    from timing.binding import PairBinder
    from timing.frames import FrameType, link_id_for
    from timing.herald_link import ZmqHeraldEndpoint

    loop = EventLoop(WallClock(), timer_slack_ps=timer_slack_ps)
    ctx = zmq.Context()
    station = None
    herald_latency_ps: list[int] = []
    endpoint = None
    ready = [0]
    n_slots = int(duration_s * 1e6 / ATTEMPT_PERIOD_US)
    if herald_stride is not None:
        station = subprocess.Popen([sys.executable, __file__, "--station", str(n_slots),
                                    str(herald_stride)],
                                   stdout=subprocess.PIPE, text=True)
        address = station.stdout.readline().strip()  # type: ignore[union-attr]
        endpoint = ZmqHeraldEndpoint("A", LINK, connect={"bsa": address}, context=ctx)
        endpoint.attach(loop)
        endpoint.subscribe(FrameType.HERALD, lambda peer, frame: herald_latency_ps.append(
            time.monotonic_ns() * 1000 - frame.aux_ps))
    binder = PairBinder("A", LINK, link_id_for(LINK), "B", "bsa", loop.clock,
                        on_pair_ready=lambda ev: ready.__setitem__(0, ready[0] + 1),
                        expiry_ps=20 * MS, loop=loop)
    busy_ns = [0]
    if endpoint is not None:
        binder.attach(endpoint)
        deliver = endpoint.deliver

        def timed_deliver(peer, data):
            t = time.perf_counter_ns()
            try:
                return deliver(peer, data)
            finally:
                busy_ns[0] += time.perf_counter_ns() - t

        endpoint.deliver = timed_deliver  # type: ignore[method-assign]
    period = ATTEMPT_PERIOD_US * US
    late_ps: list[int] = []
    t0 = loop.now_ps() + 10 * MS

    def attempt(k: int) -> None:
        t_in = time.perf_counter_ns()
        late_ps.append(loop.now_ps() - (t0 + k * period))
        if k == 0 and endpoint is not None:
            endpoint.send("bsa", FrameType.SYNC_REQUEST, 0, 0)  # the station's slot 0 is now
        # A qubit per attempt: a loop that falls far behind must not trip over reuse.
        binder.record_emission(k, QubitAddress(0, k))
        if k + 1 < n_slots:
            loop.call_at(t0 + (k + 1) * period, attempt, k + 1)
        busy_ns[0] += time.perf_counter_ns() - t_in

    loop.call_at(t0, attempt, 0)
    ivcsw0 = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
    cpu0, wall0 = time.process_time(), time.perf_counter()
    loop.run_until(t0 + n_slots * period + 20 * MS)  # the last heralds arrive ~3 ms after
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    # Involuntary context switches: the OS took the core away (other processes on a shared box).
    preempted = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - ivcsw0
    # The node's own work (attempt callbacks, herald decode + bind) as a share of one core: the
    # loop spins between timers, so its CPU share says nothing about whether the work fits.
    stats = {"pairs_ready": ready[0], "slots": n_slots, "cpu_share": cpu / wall,
             "work_share": busy_ns[0] / 1e9 / wall,
             "preempted": preempted,
             "heralds_received": endpoint.stats.received if endpoint is not None else 0,
             "herald_latency_us": np.asarray(herald_latency_ps, np.float64) / 1e6}
    if endpoint is not None:
        endpoint.close()
    if station is not None:
        station.wait(timeout=10)
    loop.close()
    ctx.term()
    return np.asarray(late_ps, dtype=np.float64) / 1e6, stats  # us


def _slack_us() -> float:
    from qnode_fw.loop import DEFAULT_TIMER_SLACK_PS

    return DEFAULT_TIMER_SLACK_PS / 1e6


# -- virtual clock ----------------------------------------------------------------------------------
def _virtual_timers(total: int, nodes: int = 3, pending: int = 100, seed: int = 1) -> float:
    from qnode_fw.clock import VirtualClock
    from qnode_fw.loop import EventLoop

    loop = EventLoop(VirtualClock())
    per_node = total // nodes
    delays = [np.random.default_rng([seed, i]).integers(1_000, 1_000_000, per_node).tolist()
              for i in range(nodes)]
    fired = [0] * nodes

    def fire(node: int) -> None:
        k = fired[node]
        fired[node] = k + 1
        if k + pending < per_node:
            loop.call_later(delays[node][k + pending], fire, node)

    for node in range(nodes):
        for k in range(pending):
            loop.call_later(delays[node][k], fire, node)
    t0 = time.perf_counter()
    loop.run_until_idle()
    wall = time.perf_counter() - t0
    loop.close()
    if sum(fired) != per_node * nodes:
        raise RuntimeError(f"fired {sum(fired)} of {per_node * nodes} timers")
    return per_node * nodes / wall


def _heapq_timers(total: int, nodes: int = 3, pending: int = 100, seed: int = 1) -> float:
    per_node = total // nodes
    delays = [np.random.default_rng([seed, i]).integers(1_000, 1_000_000, per_node).tolist()
              for i in range(nodes)]
    fired = [0] * nodes
    heap: list = []
    seq = itertools.count()
    now = [0]

    def fire(node: int) -> None:
        k = fired[node]
        fired[node] = k + 1
        if k + pending < per_node:
            heapq.heappush(heap, (now[0] + delays[node][k + pending], next(seq), fire, node))

    for node in range(nodes):
        for k in range(pending):
            heapq.heappush(heap, (delays[node][k], next(seq), fire, node))
    t0 = time.perf_counter()
    while heap:
        when, _, cb, arg = heapq.heappop(heap)
        now[0] = when
        cb(arg)
    return per_node * nodes / (time.perf_counter() - t0)


#: (figure label, herald every n-th attempt): 2 k and 10 k heralds/s against 10 k attempts/s.
LOADS = (("2k", 5), ("10k", 1))


#: A timer slack longer than the attempt period: the loop never sleeps (the spinning baseline).
SPIN_SLACK_PS = 1_000_000_000


def run(quick: bool = False) -> list[Figure]:
    seconds = 1.0 if quick else 5.0
    idle, idle_st = _lateness(seconds, herald_stride=None)
    period = Reference("attempt_period", float(ATTEMPT_PERIOD_US), "the schedule's own period")
    figures = []
    for label, stride in LOADS:
        loaded, st = _lateness(seconds, herald_stride=stride)
        spun, spin_st = _lateness(seconds, herald_stride=stride, timer_slack_ps=SPIN_SLACK_PS)
        herald_rate = st["heralds_received"] / seconds
        load = (f"{st['slots']} attempt timers every {ATTEMPT_PERIOD_US} us; "
                f"{st['heralds_received']} heralds received ({herald_rate / 1000:.1f} k/s, 1 ms "
                f"batches over ZeroMQ loopback), {st['pairs_ready']} bound to PairReady (a herald "
                f"that arrives before its late attempt timer recorded the emission is refused); "
                f"node work {st['work_share']:.0%} of a core (idle {idle_st['work_share']:.0%}); "
                f"preempted by the OS {st['preempted']} times (idle run {idle_st['preempted']})")
        for q, fn in (("p50", lambda a: np.percentile(a, 50)),
                      ("p99", lambda a: np.percentile(a, 99)), ("max", np.max)):
            figures.append(Figure(f"wall_timer_lateness_heralds_{label}_{q}",
                                  round(float(fn(loaded)), 1), "us",
                                  f"wall_timer_lateness_idle_{q}", round(float(fn(idle)), 1),
                                  load, (period,)))
        # The process's CPU time (the loop's thread and ZeroMQ's I/O thread) per wall second: a
        # loop that spins between timers shows a whole core here however little work it has.
        figures.append(Figure(f"wall_timer_cpu_share_heralds_{label}", round(100 * st["cpu_share"], 1), "%",
                              f"wall_timer_cpu_share_spinning_{label}", round(100 * spin_st["cpu_share"], 1),
                              f"process CPU seconds per wall second over the run, timer slack "
                              f"{_slack_us()} us; baseline: the same load with the loop spinning "
                              f"(slack {SPIN_SLACK_PS // 1_000_000} us); node work {st['work_share']:.0%} "
                              f"of a core (spinning {spin_st['work_share']:.0%}, idle run "
                              f"{100 * idle_st['cpu_share']:.0f} % CPU)"))
        for q in ("p50", "p99"):
            pct = float(q[1:])
            figures.append(Figure(
                f"wall_herald_latency_{label}_{q}", round(float(np.percentile(st["herald_latency_us"], pct)), 1),
                "us", f"wall_herald_latency_spinning_{label}_{q}",
                round(float(np.percentile(spin_st["herald_latency_us"], pct)), 1),
                f"station send -> dispatch on the node's loop over ZeroMQ loopback "
                f"({st['heralds_received']} heralds) while the loop runs the 100 us schedule; "
                f"baseline: the loop spinning; spinning run's timer lateness p99 "
                f"{np.percentile(spun, 99):.0f} us"))
    total = 100_000 if quick else 1_000_000
    rate = _virtual_timers(total)
    base = _heapq_timers(total)
    figures.append(Figure("virtual_timers_per_s", round(rate), "timers/s", "bare_heapq_timers_per_s",
                          round(base), f"{total} timers across 3 nodes on one virtual-clock "
                          f"EventLoop, 100 pending per node, seeded delays 1 ns..1 us; "
                          f"{total / rate:.2f} s for all"))
    return figures


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--station":
        station_main(int(sys.argv[2]), int(sys.argv[3]))
    else:
        for fig in run(quick="--quick" in sys.argv):
            print(json.dumps(fig.to_json()))
