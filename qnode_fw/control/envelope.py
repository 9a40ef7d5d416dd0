"""The control-plane envelope: what every control message looks like on the wire.

One JSON object per message (UTF-8). Fields:

``v``      schema version (:data:`SCHEMA_VERSION`); a different version is refused, naming the peer;
``k``      kind: ``data`` (reliable, ordered), ``ack``, ``hb`` (heartbeat) or ``bye`` (orderly stop);
``src``    sender's node address; ``dst`` the addressee's;
``st``     the sender's stream id ``[boot, epoch]``: ``boot`` is fixed per process start and grows
           across restarts, ``epoch`` grows each time the sender gives up on this peer, so the
           receiver knows when sequence numbers start again at 0;
``seq``    per-peer sequence number of a ``data`` message (the one acknowledged in an ``ack``);
``t``      message type (``data`` only), ``p`` its payload: a JSON object.

JSON rather than a binary format because control messages are few (connection setup, RuleSet
installation, swap and purification results) and a person debugging a testbed can read them;
the hot per-pair path is the herald link's fixed binary frames.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..addresses import NodeAddress
from ..errors import ProtocolError

SCHEMA_VERSION = 1


class Kind(str, Enum):
    DATA = "data"
    ACK = "ack"
    HEARTBEAT = "hb"
    BYE = "bye"


@dataclass(frozen=True, slots=True)
class Envelope:
    kind: Kind
    src: NodeAddress
    dst: NodeAddress
    stream: tuple[int, int]
    seq: int = 0
    msg_type: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    version: int = SCHEMA_VERSION

    def encode(self) -> bytes:
        body: dict[str, Any] = {"v": self.version, "k": self.kind.value, "src": self.src,
                                "dst": self.dst, "st": list(self.stream), "seq": self.seq}
        if self.kind is Kind.DATA:
            body["t"] = self.msg_type
            body["p"] = self.payload
        return json.dumps(body, separators=(",", ":")).encode()


def decode(data: bytes, peer_hint: str | None = None) -> Envelope:
    """Parse one envelope; :class:`ProtocolError` naming the peer and the fault otherwise."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not a JSON envelope ({exc})", peer=peer_hint, msg_type="envelope") from None
    except RecursionError:
        # A message within the size limit can nest far deeper than the parser's stack allows.
        raise ProtocolError("JSON nested too deeply", peer=peer_hint, msg_type="envelope") from None
    if not isinstance(body, dict):
        raise ProtocolError("envelope is not a JSON object", peer=peer_hint, msg_type="envelope")
    peer = body.get("src") if isinstance(body.get("src"), str) else peer_hint
    version = body.get("v")
    if version != SCHEMA_VERSION:
        raise ProtocolError(f"schema version {version!r}, this node speaks {SCHEMA_VERSION}",
                            peer=peer, msg_type=str(body.get("t", "envelope")))
    try:
        kind = Kind(body["k"])
        src, dst = body["src"], body["dst"]
        boot, epoch = body["st"]
        seq = body["seq"]
        if not (isinstance(src, str) and isinstance(dst, str) and all(
                isinstance(x, int) and not isinstance(x, bool) for x in (boot, epoch, seq))):
            raise TypeError("src/dst must be strings, st and seq integers")
        msg_type, payload = "", {}
        if kind is Kind.DATA:
            msg_type, payload = body["t"], body["p"]
            if not isinstance(msg_type, str) or not isinstance(payload, dict):
                raise TypeError("t must be a string and p an object")
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed envelope: {exc!r}", peer=peer,
                            msg_type=str(body.get("t", "envelope"))) from None
    return Envelope(kind, src, dst, (boot, epoch), seq, msg_type, payload, version)
