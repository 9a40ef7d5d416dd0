"""One benchmark figure: a measured value, the baseline measured beside it in the same run, and
fixed references (instrument rates, fibre delays) it is compared with.

Every ``bench/bench_<name>.py`` returns a list of :class:`Figure`. The ratio is taken against the
same-run baseline, so a loaded machine slows both and cannot fake a gain; references are fixed
numbers from outside the run (a Swabian tagger's 90 Mtags/s, the 4.9 us of 1 km of fibre) and are
reported as ratios too. A target, where the project has one, says which side of a number the
figure must be on.

``to_json`` gives the stable record that ``qnode bench --json`` prints; ``from_json`` reads it
back (the harness passes figures from the bench's child process this way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Relation = Literal["<=", ">="]

#: Keys of a figure's JSON record, in output order. Changing them breaks stored results.
FIGURE_KEYS = ("name", "value", "unit", "baseline", "ratio", "references", "target", "note")


def _finite(x: float | None) -> float | None:
    """JSON has no NaN or infinity: an undefined number is written as null."""
    if x is None or not math.isfinite(x):
        return None
    return float(x)


def _ratio(value: float, over: float | None) -> float | None:
    if over is None or over == 0 or not math.isfinite(over) or not math.isfinite(value):
        return None
    r = value / over
    return float(f"{r:.4g}")


@dataclass(frozen=True)
class Reference:
    """A fixed number from outside the run, in the figure's unit, with where it comes from."""

    name: str
    value: float
    source: str = ""

    def to_json(self, of_value: float) -> dict[str, Any]:
        return {"name": self.name, "value": _finite(self.value), "ratio": _ratio(of_value, self.value),
                "source": self.source}


@dataclass(frozen=True)
class Target:
    """The project's requirement on a figure: ``value <relation> target``."""

    relation: Relation
    value: float

    def __post_init__(self) -> None:
        if self.relation not in ("<=", ">="):
            raise ValueError(f"target relation must be '<=' or '>=', got {self.relation!r}")

    def met_by(self, value: float) -> bool | None:
        if not math.isfinite(value):
            return None
        return value <= self.value if self.relation == "<=" else value >= self.value

    def __str__(self) -> str:
        return f"{self.relation} {self.value:g}"


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    baseline_name: str | None = None
    baseline_value: float | None = None
    note: str = ""
    references: tuple[Reference, ...] = ()
    target: Target | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a figure needs a name")
        if (self.baseline_name is None) != (self.baseline_value is None):
            raise ValueError(f"figure {self.name}: baseline_name and baseline_value go together")
        object.__setattr__(self, "value", float(self.value))
        if self.baseline_value is not None:
            object.__setattr__(self, "baseline_value", float(self.baseline_value))
        object.__setattr__(self, "references", tuple(self.references))

    @property
    def ratio(self) -> float | None:
        """value / same-run baseline (None without a usable baseline)."""
        return _ratio(self.value, self.baseline_value)

    @property
    def target_met(self) -> bool | None:
        return None if self.target is None else self.target.met_by(self.value)

    def to_json(self) -> dict[str, Any]:
        baseline = (None if self.baseline_name is None
                    else {"name": self.baseline_name, "value": _finite(self.baseline_value)})
        target = (None if self.target is None
                  else {"relation": self.target.relation, "value": self.target.value,
                        "met": self.target_met})
        record = {"name": self.name, "value": _finite(self.value), "unit": self.unit,
                  "baseline": baseline, "ratio": self.ratio,
                  "references": [r.to_json(self.value) for r in self.references],
                  "target": target, "note": self.note}
        return {k: record[k] for k in FIGURE_KEYS}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> "Figure":
        unknown = set(record) - set(FIGURE_KEYS)
        if unknown:
            raise ValueError(f"figure record has unknown keys {sorted(unknown)}")
        base = record.get("baseline")
        tgt = record.get("target")
        nan = float("nan")
        return cls(
            name=record["name"],
            value=nan if record["value"] is None else record["value"],
            unit=record["unit"],
            baseline_name=None if base is None else base["name"],
            baseline_value=None if base is None else (nan if base["value"] is None else base["value"]),
            note=record.get("note", ""),
            references=tuple(Reference(r["name"], r["value"], r.get("source", ""))
                             for r in record.get("references", ())),
            target=None if tgt is None else Target(tgt["relation"], tgt["value"]),
        )


#: The dict shape bench modules returned before :class:`Figure` existed; still accepted so a
#: module written against it keeps working, and converted on the way in.
LEGACY_KEYS = frozenset({"name", "value", "unit", "baseline_name", "baseline_value", "ratio", "note"})


def as_figure(item: Figure | dict[str, Any], *, origin: str) -> Figure:
    """A bench module's result item as a Figure; ``origin`` names the module in errors."""
    if isinstance(item, Figure):
        return item
    if not isinstance(item, dict):
        raise TypeError(f"{origin}: run() returned a {type(item).__name__}, expected Figure")
    unknown = set(item) - LEGACY_KEYS
    missing = {"name", "value", "unit"} - set(item)
    if unknown or missing:
        raise ValueError(f"{origin}: figure dict {item.get('name', '?')!r} has unknown keys "
                         f"{sorted(unknown)} / lacks {sorted(missing)}")
    nan = float("nan")
    base = item.get("baseline_value")
    return Figure(item["name"], nan if item["value"] is None else item["value"], item["unit"],
                  item.get("baseline_name"),
                  None if item.get("baseline_name") is None else (nan if base is None else base),
                  item.get("note", ""))
