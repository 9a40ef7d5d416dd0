"""The live view of a running experiment at a terminal: a progress bar (simulated time or the
experiment's own progress, wall time) over a table of per-node status, refreshed between the
runner's slices (virtual clock) or every quarter second (``--processes``: the table is built by
:func:`node_process_rows` from the status lines the node processes print). Only used when stdout
is a terminal and ``--json`` is not given."""

from __future__ import annotations

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .base import StatusRow


class LiveView:
    def __init__(self, title: str, console: Console | None = None) -> None:
        self.console = console or Console()
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 TextColumn("{task.percentage:>5.1f}%"), TimeElapsedColumn(),
                                 console=self.console)
        self.task = self.progress.add_task(title, total=1.0)
        self.table = Table()
        self.live = Live(Group(self.progress, self.table), console=self.console,
                         refresh_per_second=8, transient=False)

    def __enter__(self) -> "LiveView":
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)

    def update(self, fraction: float, wall_s: float, rows: list[StatusRow]) -> None:
        self.progress.update(self.task, completed=min(max(fraction, 0.0), 1.0))
        table = Table(expand=False)
        for column in ("node", "role", "state", "figures"):
            table.add_column(column)
        for r in rows:
            table.add_row(r.node, r.role, r.state, r.figures)
        self.table = table
        self.live.update(Group(self.progress, table))


def node_process_rows(statuses: dict[str, dict | None], states: dict[str, str]) -> list[StatusRow]:
    """The status table of a processes-mode run, one row per node process in ``states`` (address
    -> "running", "exited 0", "killed by SIGKILL", ...), from the latest status each printed
    (``qnode run --json`` status lines: the node's status with ``clock_sync`` and ``role_status``;
    None before the first)."""
    rows = []
    for address, state in states.items():
        st = statuses.get(address)
        if st is None:
            rows.append(StatusRow(address, "", state, "no status yet"))
            continue
        peers = st.get("peers") or {}
        figures = [f"peers {sum(1 for p in peers.values() if p['up'])}/{len(peers)}"]
        if st.get("qubits_total"):
            figures.append(f"qubits held {st.get('qubits_held', 0)}/{st['qubits_total']}")
        if st.get("connections"):
            figures.append(f"rulesets {st['connections']}")
        if st.get("role_status"):
            figures.append(str(st["role_status"]))
        sync = st.get("clock_sync") or {}
        for link, s in (sync.get("links") or {}).items():
            if s.get("offset_us") is None:
                figures.append(f"sync {link}: {s.get('exchanges', 0)} exchanges")
            else:
                figures.append(f"sync {link} {s['offset_us']:+.1f} ± {s['uncertainty_us']:.1f} µs")
        for link, n in (sync.get("answered") or {}).items():
            figures.append(f"sync {link}: {n} answered")
        figures += [f"{peer} down: {p['reason']}" for peer, p in peers.items() if not p["up"]]
        rows.append(StatusRow(address, str(st.get("role", "")), state, "; ".join(figures)))
    return rows
