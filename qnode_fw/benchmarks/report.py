"""Plain-text report of a benchmark run: every figure beside its same-run baseline and the ratio,
then its fixed references (as ratios) and target, then the note that says what was measured."""

from __future__ import annotations

from typing import Any


def _num(x: float | None) -> str:
    if x is None:
        return "n/a"
    if 1000 <= abs(x) < 1e9:
        return f"{x:.0f}"
    if x == 0 or 0.01 <= abs(x) < 1000:
        return f"{x:.4g}"
    return f"{x:.3e}"


def format_figure(rec: dict[str, Any]) -> list[str]:
    base = rec["baseline"]
    head = f"  {rec['name']}: {_num(rec['value'])} {rec['unit']}"
    if base is not None:
        head += f"  | baseline {base['name']} = {_num(base['value'])}  | ratio {_num(rec['ratio'])}"
    else:
        head += "  | no same-run baseline"
    lines = [head]
    extra = [f"{r['name']} {_num(r['value'])} -> x{_num(r['ratio'])}" for r in rec["references"]]
    if rec["target"] is not None:
        t = rec["target"]
        verdict = {True: "met", False: "MISSED", None: "undetermined"}[t["met"]]
        extra.append(f"target {t['relation']} {_num(t['value'])}: {verdict}")
    if extra:
        lines.append("      vs " + "; ".join(extra))
    if rec["note"]:
        lines.append(f"      {rec['note']}")
    return lines


def format_bench(run: dict[str, Any]) -> list[str]:
    lines = [f"== {run['bench']} ({run['module']}, {run['wall_s']:.1f} s) {run['status']}"]
    if run["error"]:
        lines += ["  " + line for line in run["error"].splitlines()]
    for rec in run["figures"]:
        lines += format_figure(rec)
    return lines


def format_header(doc: dict[str, Any]) -> list[str]:
    m = doc["machine"]
    mode = "quick" if doc["quick"] else "full"
    lines = [f"qnode bench ({mode}) on {m['cpu_model']}, {m['nproc']} CPUs, Python {m['python']}, "
             f"load {m['load_avg_1m_at_start']} at start"]
    if doc["profiled"]:
        lines.append("profiled run: figures are slowed by the profiler and only show where time goes")
    return lines


def format_summary(doc: dict[str, Any]) -> list[str]:
    missed = [f"{r['bench']}/{f['name']}" for r in doc["benches"] for f in r["figures"]
              if f["target"] is not None and f["target"]["met"] is False]
    failed = [r["bench"] for r in doc["benches"] if r["status"] != "ok"]
    lines = [f"{len(doc['benches'])} benchmarks in {doc['wall_s']:.1f} s"]
    if missed:
        lines.append("targets missed: " + ", ".join(missed))
    if failed:
        lines.append("failed: " + ", ".join(failed))
    return lines


def format_markdown(doc: dict[str, Any]) -> list[str]:
    """The run as Markdown tables, one per benchmark, for docs/performance.md."""
    m = doc["machine"]
    lines = [f"Measured {doc['started_utc']} ({'quick' if doc['quick'] else 'full'} run, "
             f"{doc['wall_s']:.0f} s) on {m['cpu_model']}, {m['nproc']} CPUs, "
             f"{m['mem_total_gb']} GB, Python {m['python']}; 1-minute load average "
             f"{m['load_avg_1m_at_start']} at start."]
    for run in doc["benches"]:
        lines += ["", f"#### {run['bench']} (`{run['module']}`, {run['wall_s']:.0f} s, {run['status']})",
                  ""]
        if run["error"]:
            lines += ["```", run["error"], "```"]
            continue
        lines += ["| figure | value | same-run baseline | ratio | references (ratio) | target |",
                  "|---|---|---|---|---|---|"]
        for f in run["figures"]:
            base = f["baseline"]
            base_txt = "none" if base is None else f"{base['name']} {_num(base['value'])}"
            refs = "; ".join(f"{r['name']} {_num(r['value'])} (x{_num(r['ratio'])})"
                             for r in f["references"])
            t = f["target"]
            tgt = "" if t is None else (f"{t['relation']} {_num(t['value'])}: "
                                        + {True: "met", False: "**missed**", None: "?"}[t["met"]])
            lines.append(f"| {f['name']} | {_num(f['value'])} {f['unit']} | {base_txt} | "
                         f"{_num(f['ratio'])} | {refs} | {tgt} |")
    return lines
