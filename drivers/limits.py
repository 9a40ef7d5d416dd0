"""Safety limits: checked before anything is sent to an instrument, whatever asked for it.

Limits come from the node YAML (``instruments[].limits``). A driver calls :func:`check` with the
quantity and requested value; a violation raises :class:`~qnode_fw.errors.SafetyLimitError` and
the command never goes out. No remote message can change a driver's limits: they are read once
from the local configuration at construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from qnode_fw.errors import SafetyLimitError


@dataclass(frozen=True, slots=True)
class Range:
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


class SafetyLimits:
    """Read-only map from a quantity name (``pump_current_ma``) to its allowed :class:`Range`."""

    def __init__(self, ranges: Mapping[str, tuple[float, float] | Range] | None = None) -> None:
        items = {}
        for key, value in (ranges or {}).items():
            items[key] = value if isinstance(value, Range) else Range(float(value[0]), float(value[1]))
        self._ranges = MappingProxyType(items)

    @property
    def ranges(self) -> Mapping[str, Range]:
        return self._ranges

    def check(self, quantity: str, value: float, *, resource: str, command: str | None = None) -> None:
        allowed = self._ranges.get(quantity)
        if allowed is not None and not allowed.contains(value):
            raise SafetyLimitError(
                f"{quantity}={value} is outside the safety limit [{allowed.low}, {allowed.high}]; "
                "nothing was sent",
                resource=resource,
                command=command,
            )
