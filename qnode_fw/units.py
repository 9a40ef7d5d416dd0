"""Time is integer picoseconds everywhere on the wire and in records; helpers to convert."""

from __future__ import annotations

PS = 1
NS = 1_000
US = 1_000_000
MS = 1_000_000_000
S = 1_000_000_000_000

#: Group delay of light in standard single-mode fibre, ps per km (about 4.84-4.9 us/km;
#: n_g = 1.4682 for SMF-28 at 1550 nm gives 4.897 us/km).
FIBRE_DELAY_PS_PER_KM = 4_897_000


def seconds_to_ps(seconds: float) -> int:
    return int(round(seconds * S))


def ps_to_seconds(ps: int) -> float:
    return ps / S


def fibre_delay_ps(length_km: float) -> int:
    return int(round(length_km * FIBRE_DELAY_PS_PER_KM))
