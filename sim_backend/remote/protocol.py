"""The World protocol: how a node process talks to the World server (processes mode).

One request or reply is one ZeroMQ multipart message: a JSON header, then zero or more binary
frames holding numpy arrays (tag timestamps, waveform samples, marker edge times) so the hot data
never goes through JSON. The client is a DEALER, the server a ROUTER.

Header fields (all messages):

``v``   protocol version (:data:`PROTOCOL_VERSION`); anything else is refused with a
        :class:`~qnode_fw.errors.ProtocolError` naming the peer and the message type;
``t``   the message type (:class:`MsgType`);
``id``  the request id the client chose; a reply carries the id of its request;
``ts``  the time the request happens at, in testbed time (integer ps since the server's epoch):
        the World runs every operation at the time the node's hardware did it, not when the
        message arrived;
``h``   the sender's *horizon*: a promise that every later message from it is stamped ``>= h``.
        The server only lets the World's time pass a point once every node's horizon has passed
        it (see :mod:`sim_backend.world_server`);
``b``   the body, a JSON object whose values go through :func:`encode_value`.

Which instrument methods can be called, and how, is fixed here in :data:`METHODS`: a method not
in the table is refused, so a client cannot reach anything on the server but the simulated
instruments' driver interfaces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from drivers.time_tagger import TagBatch
from qnode_fw import errors as qerrors
from qnode_fw.errors import ProtocolError

PROTOCOL_VERSION = 1

#: Instrument kinds the World server opens for a node (``model: sim``). Simulated AWGs stay in the
#: node process: their marker edges drive that node's emission hardware at exact times, and only
#: the edges cabled to a time tagger travel to the server.
REMOTE_KINDS = ("qnic", "time_tagger", "optical_switch", "pair_source")

#: The handle of the World itself (marker edges, registry queries).
WORLD_HANDLE = 0


class MsgType(str, Enum):
    HELLO = "hello"            # client -> server: {"node"}
    WELCOME = "welcome"        # server -> client: {"epoch_ns", "seed", "testbed", "marker_wires"}
    OPEN = "open"              # client -> server: {"spec"}
    OPENED = "opened"          # server -> client: {"handle", "info"}
    CALL = "call"              # client -> server: {"handle", "method", "args"}; a reply follows
    CAST = "cast"              # like CALL, no reply unless it fails
    RESULT = "result"          # server -> client: {"value"}
    ERROR = "error"            # server -> client: a typed error (see encode_error)
    HORIZON = "horizon"        # client -> server: only the header's ``h`` matters
    QUERY = "query"            # server -> client: {"until"}: tell me once your horizon passes it
    CLOSE = "close"            # client -> server: {"handle"}
    BYE = "bye"                # client -> server: this node leaves


class Mode(str, Enum):
    """How a method runs on the server."""

    CALL = "call"          # at once, with a reply
    CAST = "cast"          # at once, no reply (the hot path: emissions)
    HORIZON = "horizon"    # once every other node's horizon reached the stamp, with a reply


#: Every method a client may invoke, per instrument kind (``world`` is the World itself).
METHODS: dict[str, dict[str, Mode]] = {
    "qnic": {"init": Mode.CAST, "gate": Mode.CAST, "measure": Mode.CALL, "move": Mode.CAST,
             "emit": Mode.CAST, "absorb": Mode.CAST},
    "time_tagger": {"set_trigger_level_v": Mode.CALL, "set_dead_time_ps": Mode.CALL,
                    "set_input_delay_ps": Mode.HORIZON, "start_stream": Mode.HORIZON,
                    "read_stream": Mode.HORIZON, "stop_stream": Mode.HORIZON,
                    "count_rates_hz": Mode.HORIZON, "coincidence_rates_hz": Mode.HORIZON},
    "optical_switch": {"connect": Mode.HORIZON, "disconnect": Mode.HORIZON,
                       "connections": Mode.CALL, "settled_at_ps": Mode.CALL},
    "pair_source": {"pump_on": Mode.HORIZON, "pump_off": Mode.HORIZON,
                    "set_pump_current_ma": Mode.HORIZON, "set_crystal_temperature_c": Mode.HORIZON,
                    "pump_is_on": Mode.CALL, "pump_current_ma": Mode.CALL,
                    "crystal_temperature_setpoint_c": Mode.CALL,
                    "crystal_temperature_c": Mode.CALL, "faults": Mode.CALL},
    "world": {"markers": Mode.CAST, "bell_fidelity": Mode.CALL, "density_matrix": Mode.CALL,
              "partners": Mode.CALL, "stats": Mode.CALL},
}

#: dtypes an array frame may carry (no object arrays from the network).
ARRAY_DTYPES = frozenset({"<i4", "<i8", "|u1", "<f8", "<c16", "|b1"})


@dataclass
class Message:
    type: MsgType
    id: int = 0
    ts: int = 0
    h: int = 0
    body: dict[str, Any] = field(default_factory=dict)

    def frames(self) -> list[bytes]:
        """The multipart frames of this message (header first)."""
        blobs: list[bytes] = []
        header = {"v": PROTOCOL_VERSION, "t": self.type.value, "id": self.id, "ts": self.ts,
                  "h": self.h, "b": {k: encode_value(v, blobs) for k, v in self.body.items()}}
        return [json.dumps(header, separators=(",", ":")).encode(), *blobs]


def decode(frames: list[bytes], peer: str | None) -> Message:
    """Parse one message; :class:`ProtocolError` naming ``peer`` and the message type otherwise."""
    if not frames:
        raise ProtocolError("empty message", peer=peer, msg_type="world")
    try:
        header = json.loads(frames[0])
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"header is not JSON ({exc})", peer=peer, msg_type="world") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object", peer=peer, msg_type="world")
    name = str(header.get("t", "world"))
    if header.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"World protocol version {header.get('v')!r}, this side speaks "
                            f"{PROTOCOL_VERSION}", peer=peer, msg_type=name)
    try:
        kind = MsgType(header["t"])
        ids = [header["id"], header["ts"], header["h"]]
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in ids):
            raise TypeError("id, ts and h must be integers")
        body = header["b"]
        if not isinstance(body, dict):
            raise TypeError("b must be an object")
        blobs = list(frames[1:])
        decoded = {str(k): decode_value(v, blobs) for k, v in body.items()}
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ProtocolError(f"malformed message: {exc}", peer=peer, msg_type=name) from None
    return Message(kind, ids[0], ids[1], ids[2], decoded)


# -- values --------------------------------------------------------------------------------------
def encode_value(value: Any, blobs: list[bytes]) -> Any:
    """A JSON-able form of ``value``; numpy arrays go to ``blobs`` and are referenced by index."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Enum):
        return encode_value(value.value, blobs)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        if array.dtype.str not in ARRAY_DTYPES:
            array = array.astype(np.float64 if array.dtype.kind == "f" else np.int64)
        blobs.append(array.tobytes())
        return {"$a": len(blobs) - 1, "d": array.dtype.str, "s": list(array.shape)}
    if isinstance(value, TagBatch):
        return {"$tags": [encode_value(value.channels, blobs), encode_value(value.timestamps_ps, blobs),
                          bool(value.overflow), int(value.missed_events),
                          encode_value(dict(value.markers), blobs)]}
    if isinstance(value, (list, tuple)):
        return [encode_value(v, blobs) for v in value]
    if isinstance(value, dict):
        return {"$m": [[encode_value(k, blobs), encode_value(v, blobs)] for k, v in value.items()]}
    raise TypeError(f"cannot send a {type(value).__name__} to the World")


def decode_value(value: Any, blobs: list[bytes]) -> Any:
    if isinstance(value, list):
        return [decode_value(v, blobs) for v in value]
    if not isinstance(value, dict):
        return value
    if "$a" in value:
        dtype = value["d"]
        if dtype not in ARRAY_DTYPES:
            raise ValueError(f"array dtype {dtype!r} not allowed")
        shape = tuple(int(s) for s in value["s"])
        return np.frombuffer(blobs[int(value["$a"])], dtype=np.dtype(dtype)).reshape(shape).copy()
    if "$tags" in value:
        ch, ts, overflow, missed, markers = value["$tags"]
        return TagBatch(decode_value(ch, blobs), decode_value(ts, blobs), bool(overflow), int(missed),
                        decode_value(markers, blobs))
    if "$m" in value:
        return {_hashable(decode_value(k, blobs)): decode_value(v, blobs) for k, v in value["$m"]}
    raise ValueError(f"unknown value object with keys {sorted(value)}")


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


# -- errors --------------------------------------------------------------------------------------
#: Error classes that cross the wire as themselves; anything else arrives as a ProtocolError.
_ERRORS: dict[str, type[qerrors.QnodeError]] = {
    cls.__name__: cls for cls in (qerrors.InstrumentError, qerrors.QubitRoleError,
                                  qerrors.InstrumentTimeout, qerrors.InstrumentDisconnected,
                                  qerrors.SafetyLimitError, qerrors.ConfigError,
                                  qerrors.ProtocolError)}


def encode_error(exc: BaseException) -> dict[str, Any]:
    """The body of an ERROR reply for ``exc``, keeping the fields that say where it happened."""
    body: dict[str, Any] = {"error": type(exc).__name__ if type(exc).__name__ in _ERRORS else "internal",
                            "message": getattr(exc, "message", None) or str(exc) or type(exc).__name__}
    for name in ("resource", "command", "file", "line", "field", "expected", "peer", "msg_type"):
        if getattr(exc, name, None) is not None:
            body[name] = getattr(exc, name)
    return body


def decode_error(body: dict[str, Any], peer: str, what: str) -> qerrors.QnodeError:
    """The typed error an ERROR reply stands for; ``what`` names the request (``qnic.measure``)."""
    cls = _ERRORS.get(str(body.get("error")))
    message = str(body.get("message", "error"))
    if cls is not None and issubclass(cls, qerrors.InstrumentError):
        return cls(message, resource=str(body.get("resource", peer)), command=body.get("command"))
    if cls is qerrors.ConfigError:
        return qerrors.ConfigError(message, file=body.get("file"), line=body.get("line"),
                                   field=body.get("field"), expected=body.get("expected"))
    if cls is ProtocolError:
        return ProtocolError(message, peer=peer, msg_type=what)
    return ProtocolError(f"World server failed: {message}", peer=peer, msg_type=what)


__all__ = ["ARRAY_DTYPES", "METHODS", "Message", "Mode", "MsgType", "PROTOCOL_VERSION",
           "REMOTE_KINDS", "WORLD_HANDLE", "decode", "decode_error", "decode_value",
           "encode_error", "encode_value"]
