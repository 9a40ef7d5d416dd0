"""Command round trips per second for each socket/serial/ZeroMQ driver against its emulator.

Baseline, measured in the same run: a raw TCP socket query/reply against the same Keysight
emulator, i.e. what the emulator plus loopback cost without any driver layers.
"""

from __future__ import annotations

import socket
import time

from drivers.registry import InstrumentSpec, open_instrument
from qnode_fw.benchmarks import Figure
from sim_backend.emulators.awg import Keysight33500Emulator, TektronixAWG70kEmulator
from sim_backend.emulators.idq import IdqTimeControllerEmulator
from sim_backend.emulators.pair_sources import QubitekkSpdcEmulator
from sim_backend.emulators.switches import DiconMemsEmulator, PolatisEmulator


def _rate(fn, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return n / elapsed


def _raw_socket_rate(emulator: Keysight33500Emulator, seconds: float) -> float:
    with socket.create_connection((emulator.host, emulator.port), timeout=2) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def once() -> None:
            sock.sendall(b"*IDN?\n")
            data = b""
            while not data.endswith(b"\n"):
                data += sock.recv(4096)

        return _rate(once, seconds)


def run(quick: bool = False) -> list[Figure]:
    seconds = 0.5 if quick else 3.0
    cases = [
        ("keysight_33500b", "awg", Keysight33500Emulator, "visa_socket_resource", {}, lambda i: i.amplitude[1]),
        ("tektronix_awg70k", "awg", TektronixAWG70kEmulator, "visa_socket_resource", {}, lambda i: i.amplitude[1]),
        ("polatis", "optical_switch", PolatisEmulator, "visa_socket_resource", {}, lambda i: i.connections()),
        ("dicon_mems_1xn", "optical_switch", DiconMemsEmulator, "serial_url", {}, lambda i: i.connections()),
        ("qubitekk_spdc", "pair_source", QubitekkSpdcEmulator, "serial_url", {}, lambda i: i.pump_current_ma()),
        ("idq_id900", "time_tagger", IdqTimeControllerEmulator, "endpoint", {}, lambda i: i.threshold[1]),
    ]
    with Keysight33500Emulator() as base_emu:
        baseline = _raw_socket_rate(base_emu, seconds)
    results = []
    for model, kind, emu_cls, attr, options, query in cases:
        with emu_cls() as emu:
            spec = InstrumentSpec(f"bench-{model}", kind, model, getattr(emu, attr), {}, options)
            inst = open_instrument(spec)
            try:
                rate = _rate(lambda: query(inst), seconds)
            finally:
                inst.close()
        results.append(Figure(
            f"{model}_query_round_trips", round(rate, 1), "round trips/s",
            "raw_tcp_idn_round_trips_same_emulator_framework", round(baseline, 1),
            f"{kind} driver over its transport to its emulator on loopback, emulator in a thread "
            "of the same process; one query per round trip; baseline: raw TCP socket *IDN? "
            "against the Keysight emulator"))
    return results


if __name__ == "__main__":
    import json
    import sys

    for fig in run(quick="--quick" in sys.argv):
        print(json.dumps(fig.to_json()))
