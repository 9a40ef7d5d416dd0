"""The bench report (pass/fail per check with its measured figures, runtime per level) and the
calibration YAML a run writes for the next one.

A report directory holds ``report.json`` (everything, for tools), ``report.md`` (for people) and
``calibration.yaml`` (``calibration:`` with the measured input delays and crystal temperatures,
which ``qnode validate`` accepts, a node or bench file can ``include:``, and ``qnode hil
--calibration`` applies).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from qnode_fw.config.node import CalibrationConfig

from .levels import Level
from .session import FAILED, LISTED, PASSED, SKIPPED, CheckResult


@dataclass
class BenchReport:
    bench: str
    file: str
    backend: str
    max_level: int
    dry_run: bool
    started: str
    #: Where the calibration in force came from (a file, the bench file's own, or none).
    calibration_source: str
    results: list[CheckResult]
    calibration: CalibrationConfig
    #: What each emulated instrument received (emulated benches), from the emulators' logs.
    traffic: dict[str, str] | None = None

    @property
    def passed(self) -> bool:
        return all(r.ok for r in self.results)

    def counts(self) -> dict[str, int]:
        return {s: sum(r.status == s for r in self.results) for s in (PASSED, FAILED, SKIPPED, LISTED)}

    def runtime_by_level(self) -> dict[int, float]:
        out = {int(level): 0.0 for level in Level if level <= self.max_level}
        for r in self.results:
            if r.status != SKIPPED and int(r.level) in out:
                out[int(r.level)] += r.duration_s
        return out

    def to_dict(self) -> dict:
        return {
            "bench": self.bench, "file": self.file, "backend": self.backend, "max_level": self.max_level,
            "dry_run": self.dry_run, "started": self.started, "passed": self.passed, "counts": self.counts(),
            "calibration_source": self.calibration_source,
            "runtime_s_by_level": {str(k): round(v, 3) for k, v in self.runtime_by_level().items()},
            "traffic": self.traffic,
            "calibration": self.calibration.model_dump(mode="json"),
            "checks": [{**asdict(r), "level": int(r.level)} for r in self.results],
        }

    def render_text(self) -> str:
        lines = [f"bench {self.bench} ({self.backend}, {self.file}), levels 0-{self.max_level}"
                 + (", DRY RUN: nothing is sent" if self.dry_run else ""),
                 f"calibration in force: {self.calibration_source}"]
        for r in self.results:
            lines.append(f"  [L{int(r.level)}] {r.status.upper():7s} {r.id}  ({r.duration_s:.2f} s)")
            figures = [_figure(f) for f in r.figures]
            if figures:
                lines.append("      " + "; ".join(figures))
            if r.message:
                lines.append("      " + r.message)
            for command in r.commands:
                lines.append("      > " + command)
        if self.traffic is not None:
            lines.append("emulators: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.traffic.items())))
        counts = self.counts()
        runtime = ", ".join(f"L{k} {v:.2f} s" for k, v in self.runtime_by_level().items())
        lines.append(f"{'PASSED' if self.passed else 'FAILED'}: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
                     + f"; runtime {runtime}")
        return "\n".join(lines)

    def render_markdown(self) -> str:
        out = [f"# Bench report: {self.bench}", "",
               f"- file: `{self.file}`", f"- backend: {self.backend}", f"- started: {self.started}",
               f"- levels run: 0-{self.max_level}" + (" (dry run: nothing was sent)" if self.dry_run else ""),
               f"- calibration in force: {self.calibration_source}",
               f"- result: **{'PASSED' if self.passed else 'FAILED'}** "
               + ", ".join(f"{v} {k}" for k, v in self.counts().items() if v),
               "- runtime per level: " + ", ".join(f"L{k} {v:.2f} s" for k, v in self.runtime_by_level().items()),
               ""]
        if self.traffic is not None:
            out += ["Emulators (received since start): " + ", ".join(f"{k} {v}" for k, v in sorted(self.traffic.items())),
                    ""]
        out += ["| level | check | status | figures | message |", "|---|---|---|---|---|"]
        for r in self.results:
            figures = "<br>".join(_figure(f) for f in r.figures)
            message = r.message.replace("|", "\\|")
            out.append(f"| {int(r.level)} | `{r.id}` | {r.status} | {figures} | {message} |")
        listed = [r for r in self.results if r.commands]
        if listed:
            out += ["", "## Calls a run would make", ""]
            for r in listed:
                out += [f"### {r.id}", "", "```", *r.commands, "```", ""]
        return "\n".join(out) + "\n"


def _figure(f) -> str:
    text = f"{f.name} = {f.value}{(' ' + f.unit) if f.unit else ''}"
    extra = [x for x in ((f"configured {f.configured}" if f.configured is not None else None), f.limit) if x]
    return text + (f" ({', '.join(extra)})" if extra else "")


def calibration_yaml(report: BenchReport) -> str:
    header = (f"# Calibration measured by `qnode hil` on bench {report.bench} ({report.started}).\n"
              "# Include it from a node or bench file (include: [calibration.yaml]) or pass it to\n"
              "# `qnode hil --calibration`. Input delays: ps per tagger input, applied before measuring;\n"
              "# crystal temperatures: the coincidence peak of the last scan, deg C.\n")
    body = {"calibration": report.calibration.model_dump(mode="python")}
    return header + yaml.safe_dump(body, sort_keys=True)


def write_report(report: BenchReport, directory: str | Path) -> dict[str, Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": directory / "report.json", "markdown": directory / "report.md",
             "calibration": directory / "calibration.yaml"}
    paths["json"].write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    paths["markdown"].write_text(report.render_markdown(), encoding="utf-8")
    if not report.dry_run:
        paths["calibration"].write_text(calibration_yaml(report), encoding="utf-8")
    else:
        paths.pop("calibration")
    return paths
