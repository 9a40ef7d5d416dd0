"""The live view of a running experiment at a terminal: a progress bar (simulated time or the
experiment's own progress, wall time) over a table of per-node status, refreshed between the
runner's slices. Only used when stdout is a terminal and ``--json`` is not given."""

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
