"""Messages RuleSets exchange on the control link, and their wire form.

Every message carries the header QRNA and the issue ask for:

* ``ruleset_id`` – the connection's RuleSet id (shared by all nodes of the connection);
* ``tag`` – the rule tag pairing the sending Rule with the receiving Rule (-1 for none);
* ``seq`` – the sender's sequence number for this RuleSet (dedup only, never used for pairing);
* ``sender`` – the sending node;
* ``pair_name`` – the Bell pair the message is about, which is what the receiver pairs on.

``to_wire()`` gives a JSON-safe dict (``{"type": ..., "v": 1, ...}``); ``message_from_wire()``
parses any of them and raises :class:`~qnode_fw.errors.ProtocolError` naming the peer and message
type for anything malformed. The control plane's transport carries these dicts; the executor only
sees message objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Union

from ..addresses import NodeAddress, PairName
from ..errors import ProtocolError

WIRE_VERSION = 1


@dataclass(frozen=True)
class PurificationResult:
    """Outcome of one purification at ``sender``: it kept ``pair_name`` and measured
    ``sacrificed``; ``result`` is the parity bit(s) (one per sacrificed pair)."""

    type: ClassVar[str] = "PurificationResult"
    ruleset_id: str
    tag: int
    seq: int
    sender: NodeAddress
    pair_name: PairName
    sacrificed: tuple[PairName, ...]
    method: str
    result: tuple[int, ...]

    def to_wire(self) -> dict:
        return {**_header(self), "sacrificed": [p.to_wire() for p in self.sacrificed],
                "method": self.method, "result": list(self.result)}


@dataclass(frozen=True)
class SwapResult:
    """TRANSFER notice from swapper ``sender``: the pair ``pair_name`` this receiver holds with the
    swapper is now the pair ``new_pair_name`` with ``new_partner``; apply X^frame_x Z^frame_z.
    ``fidelity_estimate`` is the swapper's estimate of the new pair; ``created_ps`` is the creation
    time of its oldest component on the swapper's monotonic clock (for the record: no other node
    can read that clock); ``older_ps`` is how much earlier than the pair ``pair_name`` that oldest
    component was created, a duration the swapper measures on its one clock. The receiver ages
    the new pair from its own half's creation minus ``older_ps``, so both ends and later swappers
    age it alike whatever their clocks read (None from a sender that does not give it: the
    receiver then takes ``created_ps`` as on a clock it shares)."""

    type: ClassVar[str] = "SwapResult"
    ruleset_id: str
    tag: int
    seq: int
    sender: NodeAddress
    pair_name: PairName
    frame_x: int
    frame_z: int
    new_partner: NodeAddress
    new_pair_name: PairName
    fidelity_estimate: float
    created_ps: int
    older_ps: int | None = None

    def to_wire(self) -> dict:
        out = {**_header(self), "frame": [self.frame_x, self.frame_z],
               "new_partner": self.new_partner, "new_pair_name": self.new_pair_name.to_wire(),
               "fidelity_estimate": self.fidelity_estimate, "created_ps": self.created_ps}
        if self.older_ps is not None:
            out["older_ps"] = self.older_ps
        return out


@dataclass(frozen=True)
class Notice:
    """A free-form notice from a SendMessage action (``pair_name`` may be None)."""

    type: ClassVar[str] = "Notice"
    ruleset_id: str
    tag: int
    seq: int
    sender: NodeAddress
    pair_name: PairName | None
    text: str

    def to_wire(self) -> dict:
        return {**_header(self), "text": self.text}


RuleSetMessage = Union[PurificationResult, SwapResult, Notice]


def _header(msg: Any) -> dict:
    return {"type": msg.type, "v": WIRE_VERSION, "ruleset_id": msg.ruleset_id, "tag": msg.tag,
            "seq": msg.seq, "sender": msg.sender,
            "pair_name": msg.pair_name.to_wire() if msg.pair_name is not None else None}


def _int(d: dict, key: str) -> int:
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{key} must be an integer, got {v!r}")
    return v


def _str(d: dict, key: str) -> str:
    v = d[key]
    if not isinstance(v, str):
        raise ValueError(f"{key} must be a string, got {v!r}")
    return v


def _older(d: dict) -> int | None:
    if "older_ps" not in d:
        return None
    v = _int(d, "older_ps")
    if v < 0:
        raise ValueError(f"older_ps must be >= 0, got {v}")
    return v


def _name(value: Any) -> PairName:
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool)):
        raise ValueError(f"pair name must be [node, timestamp_ps], got {value!r}")
    return PairName.from_wire(value)


def _bits(value: Any, key: str) -> tuple[int, ...]:
    if not isinstance(value, list) or any(b not in (0, 1) or isinstance(b, bool) for b in value):
        raise ValueError(f"{key} must be a list of 0/1, got {value!r}")
    return tuple(value)


_HEADER_FIELDS = ("type", "v", "ruleset_id", "tag", "seq", "sender", "pair_name")
_FIELDS = {
    PurificationResult.type: (*_HEADER_FIELDS, "sacrificed", "method", "result"),
    SwapResult.type: (*_HEADER_FIELDS, "frame", "new_partner", "new_pair_name",
                      "fidelity_estimate", "created_ps", "older_ps"),
    Notice.type: (*_HEADER_FIELDS, "text"),
}


def message_from_wire(data: Any) -> RuleSetMessage:
    """Parse a wire dict into a message; :class:`ProtocolError` on anything malformed."""
    if not isinstance(data, dict):
        raise ProtocolError(f"message must be a mapping, got {type(data).__name__}")
    msg_type = data.get("type")
    peer = data.get("sender") if isinstance(data.get("sender"), str) else None
    try:
        if data.get("v") != WIRE_VERSION:
            raise ValueError(f"wire version {data.get('v')!r} unsupported (reads {WIRE_VERSION})")
        allowed = _FIELDS.get(msg_type) if isinstance(msg_type, str) else None
        if allowed is not None:
            unknown = sorted(str(k) for k in data if k not in allowed)
            if unknown:
                # Refused, not ignored: no message carries anything but its own fields.
                raise ValueError(f"unknown field(s) {unknown}")
        head = dict(ruleset_id=_str(data, "ruleset_id"), tag=_int(data, "tag"),
                    seq=_int(data, "seq"), sender=_str(data, "sender"))
        raw_name = data["pair_name"]
        if msg_type == PurificationResult.type:
            return PurificationResult(
                **head, pair_name=_name(raw_name),
                sacrificed=tuple(_name(v) for v in data["sacrificed"]),
                method=_str(data, "method"), result=_bits(data["result"], "result"))
        if msg_type == SwapResult.type:
            frame = _bits(data["frame"], "frame")
            if len(frame) != 2:
                raise ValueError(f"frame must be [x, z], got {list(frame)}")
            fid = data["fidelity_estimate"]
            if isinstance(fid, bool) or not isinstance(fid, (int, float)) or not 0 <= fid <= 1:
                raise ValueError(f"fidelity_estimate must be in [0, 1], got {fid!r}")
            return SwapResult(**head, pair_name=_name(raw_name), frame_x=frame[0],
                              frame_z=frame[1], new_partner=_str(data, "new_partner"),
                              new_pair_name=_name(data["new_pair_name"]),
                              fidelity_estimate=float(fid), created_ps=_int(data, "created_ps"),
                              older_ps=_older(data))
        if msg_type == Notice.type:
            return Notice(**head, pair_name=None if raw_name is None else _name(raw_name),
                          text=_str(data, "text"))
        raise ValueError(f"unknown message type {msg_type!r}")
    except KeyError as exc:
        raise ProtocolError(f"missing field {exc.args[0]!r}", peer=peer,
                            msg_type=str(msg_type)) from None
    except (ValueError, TypeError) as exc:
        raise ProtocolError(str(exc), peer=peer, msg_type=str(msg_type)) from None
