"""What each driver model's identification reply looks like, so a bench can tell that the
instrument at a resource is the model its bench file names (a swapped USB cable or a wrong IP
address shows up here, before anything is changed).

Patterns are searched case-insensitively in :meth:`~drivers.instrument.Instrument.identify`'s
reply. The SCPI ones follow the ``*IDN?`` manufacturer,model fields of each vendor's manual; a bench
file's ``identity:`` replaces the default (to pin a serial number, say).
"""

from __future__ import annotations

import re

IDENTITY_PATTERNS: dict[str, str] = {
    "keysight_33500b": r"^(Agilent|Keysight) Technologies,33[56]\d\d[AB],",
    "tektronix_awg70k": r"^TEKTRONIX,AWG(70\d{3}[AB]?|52\d\d),",
    "swabian": r"^Swabian Time Tagger",
    "idq_id900": r"^ID ?Quantique,ID(900|1000),",
    "ptu_replay": r"^PTU replay ",
    "polatis": r"^Polatis,",
    "dicon_mems_1xn": r"^DiCon",
    "agiltron_1xn": r"^Agiltron",
    "qubitekk_spdc": r"^Qubitekk,",
    "thorlabs_itc4001_ted4015": r"^Thorlabs,ITC4001,.*\+ Thorlabs,TED4015,",
    "lab_binding": r"^qnode-fw,LabQNIC,",
    "sim": r"^qnode-fw,Sim",
}


def identity_pattern(instrument) -> str | None:
    """The bench file's ``identity`` or the model's default; None when neither exists."""
    return instrument.identity or IDENTITY_PATTERNS.get(instrument.model)


def identity_matches(pattern: str, reply: str) -> bool:
    return re.search(pattern, reply.strip(), re.IGNORECASE) is not None
