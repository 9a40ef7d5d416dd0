"""CurveZMQ identities, key files, and the ZAP allowlist that admits only configured nodes.

Every node has a CURVE keypair; the testbed lists each node's public key. A node's ZeroMQ
context runs one :class:`NodeAuthenticator` (pyzmq's ``ThreadAuthenticator`` with a credentials
callback) that admits a CURVE client only if its public key is on the allowlist, and reports the
*node address* the key belongs to as the connection's ZAP User-Id. The control link then checks
that the routing id and the envelope's sender are that same address, so a node cannot speak as
another even with a valid key of its own.

The herald links use the same mechanism: pass the node's ``zmq.Context`` (whose authenticator
already runs) and ``zap_domain="herald"`` to the timing layer's ZeroMQ endpoint, with
``CurveIdentity.public``/``.secret`` and the peers' public keys.

Key files are ZeroMQ's own certificate format (``zmq.auth.create_certificates``):
``<node>.key`` holds the public key, ``<node>.key_secret`` both keys.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from ..addresses import NodeAddress
from ..errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_DOMAINS = ("control", "herald")


def _z85(key: bytes | str) -> bytes:
    """Normalise a CURVE key (40-char Z85 text or 32 raw bytes) to Z85 bytes."""
    if isinstance(key, str):
        key = key.encode()
    if len(key) == 32:
        return z85.encode(key)
    if len(key) == 40:
        z85.decode(key)  # raises on characters outside the Z85 alphabet
        return key
    raise ValueError(f"a CURVE key is 40 Z85 characters or 32 bytes, got {len(key)} bytes")


@dataclass(frozen=True, slots=True)
class CurveIdentity:
    """This node's CURVE keypair (Z85)."""

    public: bytes
    secret: bytes

    @classmethod
    def generate(cls) -> "CurveIdentity":
        pub, sec = zmq.curve_keypair()
        return cls(pub, sec)


def write_node_keys(directory: str | Path, node: NodeAddress) -> tuple[Path, Path]:
    """Write ``<node>.key`` and ``<node>.key_secret`` into ``directory``; returns both paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    pub, sec = zmq.auth.create_certificates(str(d), node)
    Path(sec).chmod(0o600)
    return Path(pub), Path(sec)


def load_identity(secret_file: str | Path) -> CurveIdentity:
    """Load a node's keypair from its ``.key_secret`` file."""
    try:
        pub, sec = zmq.auth.load_certificate(str(secret_file))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read CURVE keypair: {exc}", file=str(secret_file)) from None
    if not sec:
        raise ConfigError("file holds no secret key (use the .key_secret file)", file=str(secret_file))
    return CurveIdentity(pub, sec)


def load_public_key(key_file: str | Path) -> bytes:
    try:
        pub, _ = zmq.auth.load_certificate(str(key_file))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read CURVE public key: {exc}", file=str(key_file)) from None
    return pub


def load_allowlist(directory: str | Path, nodes: Iterable[NodeAddress]) -> dict[NodeAddress, bytes]:
    """Public keys of ``nodes`` from ``directory/<node>.key``."""
    return {n: load_public_key(Path(directory) / f"{n}.key") for n in nodes}


def zap_handler_running(context: zmq.Context) -> bool:
    """Whether a ZAP handler serves ``context``: without one libzmq admits every CURVE client."""
    probe = context.socket(zmq.PAIR)
    try:
        probe.linger = 0
        probe.bind(_ZAP_ENDPOINT)
    except zmq.ZMQError:
        probe.close()
        return True  # already bound: a ZAP handler is running
    # Unbind before closing: a closed socket gives its inproc name back only when the context
    # reaps it, later, and an authenticator started right after would find the name taken.
    probe.unbind(_ZAP_ENDPOINT)
    probe.close()
    return False


_ZAP_ENDPOINT = "inproc://zeromq.zap.01"


class NodeAuthenticator(ThreadAuthenticator):
    """ZAP handler for one context: CURVE clients must hold a key on the node allowlist.

    The ZAP User-Id of an admitted connection is the node address the key belongs to
    (``frame.get("User-Id")`` on every received message).
    """

    def __init__(self, context: zmq.Context, allowlist: Mapping[NodeAddress, bytes | str],
                 domains: Iterable[str] = DEFAULT_DOMAINS) -> None:
        super().__init__(context)
        self._by_key: dict[bytes, NodeAddress] = {}
        self.denied: list[tuple[str, bytes]] = []
        self.set_allowlist(allowlist)
        self._domains = tuple(domains)

    def set_allowlist(self, allowlist: Mapping[NodeAddress, bytes | str]) -> None:
        by_key: dict[bytes, NodeAddress] = {}
        for node, key in allowlist.items():
            k = _z85(key)
            if k in by_key:
                raise ConfigError(f"nodes {by_key[k]!r} and {node!r} share one public key",
                                  field=f"keys.{node}")
            by_key[k] = node
        self._by_key = by_key

    def start(self) -> None:
        super().start()
        for domain in self._domains:
            self.configure_curve_callback(domain, credentials_provider=self)

    # credentials-provider protocol of pyzmq's Authenticator
    def callback(self, domain: str, key: bytes) -> bool:
        ok = key in self._by_key
        if not ok:
            self.denied.append((domain, key))
            del self.denied[:-100]
            log.warning("zap-denied domain=%s key=%s", domain, key.decode(errors="replace"))
        return ok

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self._by_key.get(z85.encode(client_public_key), "")
