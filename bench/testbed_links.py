"""The quantum links of the testbeds in configs/testbeds/, with their fibre delays, so latency
benchmarks can state their figures as multiples of the fibre the signal would cross anyway.

A link's ``fibre_km`` in the node YAML is the whole fibre between the two nodes (through the BSA
or EPPS station); its delay uses the project's group delay (qnode_fw.units, 4.897 us/km).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qnode_fw.benchmarks import Reference
from qnode_fw.config.testbed import load_testbed
from qnode_fw.errors import ConfigError
from qnode_fw.units import fibre_delay_ps

TESTBEDS = Path(__file__).resolve().parent.parent / "configs" / "testbeds"


@dataclass(frozen=True)
class ConfiguredLink:
    testbed: str
    a: str
    b: str
    fibre_km: float

    @property
    def delay_us(self) -> float:
        return fibre_delay_ps(self.fibre_km) / 1e6

    def reference(self) -> Reference:
        return Reference(f"fibre_delay_{self.testbed}_{self.a}-{self.b}", round(self.delay_us, 3),
                         f"{self.fibre_km:g} km link {self.a}-{self.b} in configs/testbeds/"
                         f"{self.testbed}.yaml")


def configured_links(folder: Path = TESTBEDS) -> tuple[list[ConfiguredLink], list[str]]:
    """Every quantum link of every testbed file (sorted), and a problem line per file not loaded."""
    links: list[ConfiguredLink] = []
    problems: list[str] = []
    if not folder.is_dir():
        return links, [f"no {folder} folder: no configured links to compare with"]
    files = sorted(folder.glob("*.yaml"))
    if not files:
        problems.append(f"no testbed files in {folder}: no configured links to compare with")
    for path in files:
        try:
            tb = load_testbed(path).config
        except ConfigError as exc:
            problems.append(f"{path.name} not loaded: {str(exc).splitlines()[0]}")
            continue
        for a, b in tb.quantum_links():
            link = tb.node(a).link_to(b)
            if link is not None:
                links.append(ConfiguredLink(tb.name, a, b, link.fibre_km))
    return links, problems
