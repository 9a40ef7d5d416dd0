"""What every instrument driver, real or simulated, has in common."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar


class Instrument(ABC):
    """Base of every driver.

    ``kind`` names the interface (``"awg"``, ``"time_tagger"``, ``"optical_switch"``,
    ``"pair_source"``, ``"qnic"``); ``model`` names the concrete instrument model as written in a
    node YAML (``"keysight_33500b"``, ``"sim"``). ``name`` is the instrument's name in the node
    configuration and ``resource`` its transport address (VISA resource string, serial URL,
    ``tcp://host:port`` or ``sim``).
    """

    kind: ClassVar[str]
    model: ClassVar[str]

    def __init__(self, name: str, resource: str) -> None:
        self.name = name
        self.resource = resource

    @abstractmethod
    def identify(self) -> str:
        """The instrument's identification string (``*IDN?`` or the equivalent)."""

    def close(self) -> None:
        """Release the transport. Safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
