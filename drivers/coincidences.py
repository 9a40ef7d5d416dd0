"""Coincidence groups counted in a tag stream, with the semantics of a Swabian ``Coincidences``
virtual channel, for taggers that have no such measurement of their own (file replay).

Definition: a tag on a channel of group G *completes* a coincidence of G when every other channel
of G has a tag earlier in the stream (earlier position; equal timestamps count in stream order)
no more than ``window_ps`` before it. Each completing tag is one coincidence, stamped with its own
time (the last tag of the group). For a pair of sparse channels this is the number of pairs with
``|t_b - t_a| <= window_ps``.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from qnode_fw.errors import InstrumentError

Group = tuple[int, ...]


def checked_groups(groups: Iterable[Iterable[int]], channels: list[int], window_ps: int,
                   duration_ps: int, *, resource: str, command: str) -> list[Group]:
    """Groups as tuples of at least two different existing channels; raises before anything runs."""
    out: list[Group] = []
    for g in groups:
        group = tuple(int(c) for c in g)
        if len(group) < 2 or len(set(group)) != len(group):
            raise InstrumentError(f"coincidence group {list(group)} needs two or more different channels",
                                  resource=resource, command=command)
        missing = [c for c in group if c not in channels]
        if missing:
            raise InstrumentError(f"channel {missing[0]} does not exist; nothing was started",
                                  resource=resource, command=command)
        out.append(group)
    if not out:
        raise InstrumentError("no coincidence groups given", resource=resource, command=command)
    if int(window_ps) < 0 or int(duration_ps) <= 0:
        raise InstrumentError("the window must be >= 0 ps and the duration > 0 ps",
                              resource=resource, command=command)
    return out


def group_coincidences(channels: np.ndarray, timestamps_ps: np.ndarray, group: Group,
                       window_ps: int) -> np.ndarray:
    """Timestamps of the coincidences of ``group`` in a time-sorted stream."""
    ch = np.asarray(channels)
    ts = np.asarray(timestamps_ps, np.int64)
    sel = np.isin(ch, group)
    ch, ts = ch[sel], ts[sel]
    complete = np.ones(ts.size, bool)
    positions = np.arange(ts.size)
    for c in group:
        own = np.flatnonzero(ch == c)
        # for each tag, the last tag of channel c strictly before it in the stream
        k = np.searchsorted(own, positions, "left") - 1
        has = k >= 0
        near = np.zeros(ts.size, bool)
        near[has] = ts[has] - ts[own[k[has]]] <= window_ps
        complete &= near | (ch == c)
    return ts[complete]


def count_coincidences(channels: np.ndarray, timestamps_ps: np.ndarray, groups: list[Group],
                       window_ps: int) -> dict[Group, int]:
    return {g: int(group_coincidences(channels, timestamps_ps, g, window_ps).size) for g in groups}
