"""Processes mode with a network per node (``qnode testbed --processes --netns``, as root).

Every node gets its own Linux network namespace with one interface (``eth0``, a veth pair whose
other end sits on a bridge in the host namespace) and its own address; the World server listens on
the bridge. Traffic a node sends to a peer it shares fibre with is delayed by ``tc netem`` on the
node's ``eth0`` by that fibre's delay: the whole link between two ends, half of it between an end
and its station. Everything else (the World server, nodes without fibre between them) crosses the
bridge undelayed.

The nodes keep their files: a derived testbed (written into the run directory) overrides each
node's control endpoint and herald endpoints with the node's own address, same ports.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..config.node import LinkScheme
from ..config.testbed import LoadedTestbed
from ..errors import ConfigError, QnodeError
from ..logs import event
from ..units import fibre_delay_ps

log = logging.getLogger(__name__)

_ENDPOINT = re.compile(r"^tcp://([^:/]+):(\d+)$")


@dataclass(frozen=True)
class NetnsNode:
    address: str
    namespace: str
    veth: str                  # host side of the node's veth pair (on the bridge)
    ip: str


def path_delays_ps(testbed: LoadedTestbed) -> dict[tuple[str, str], int]:
    """One-way fibre delay between every two nodes that share fibre (both directions)."""
    cfg = testbed.config
    delays: dict[tuple[str, str], int] = {}

    def put(x: str, y: str, km: float) -> None:
        d = fibre_delay_ps(km)
        delays[(x, y)] = max(delays.get((x, y), 0), d)
        delays[(y, x)] = max(delays.get((y, x), 0), d)

    for a, b in cfg.quantum_links():
        link = cfg.node(a).link_to(b)
        if link is None:
            continue
        put(a, b, link.fibre_km)
        if link.station is not None and link.scheme is not LinkScheme.AT_SOURCE:
            put(a, link.station, link.fibre_km / 2)
            put(b, link.station, link.fibre_km / 2)
    return delays


class NetnsTestbed:
    """Namespaces, veth pairs, a bridge and netem delays for one run; :meth:`teardown` removes
    them all (also after a failed :meth:`setup`)."""

    def __init__(self, testbed: LoadedTestbed, run_dir: Path, *, with_delays: bool = True) -> None:
        """``with_delays=False`` leaves out the netem delays (a kernel without netem): the nodes
        are still isolated, each on its own address."""
        if os.geteuid() != 0:
            raise ConfigError("--netns creates network namespaces and needs root",
                              field="--netns", expected="run as root, or without --netns")
        if len(testbed.config.nodes) > 250:
            raise ConfigError("--netns gives each node an address in one /24", field="nodes",
                              expected="at most 250 nodes")
        self.testbed = testbed
        self.run_dir = Path(run_dir)
        tag = os.getpid() % 10000
        subnet = ipaddress.ip_network(f"10.213.{os.getpid() % 250}.0/24")
        hosts = list(subnet.hosts())
        self.bridge = f"qnb{tag}"
        self.world_ip = str(hosts[0])
        self.prefix = subnet.prefixlen
        self.nodes = {n.address: NetnsNode(n.address, f"qn{tag}-{i}", f"qnv{tag}n{i}", str(hosts[i + 1]))
                      for i, n in enumerate(testbed.config.nodes)}
        self.delays = path_delays_ps(testbed)
        self.with_delays = with_delays
        self._made: list[list[str]] = []          # undo commands, last first

    # -- commands -----------------------------------------------------------------------------------
    @staticmethod
    def _run(*argv: str) -> None:
        done = subprocess.run(list(argv), capture_output=True, text=True)
        if done.returncode != 0:
            raise QnodeError(f"{' '.join(argv)} failed: {done.stderr.strip() or done.returncode}")

    def setup(self) -> None:
        try:
            self._run("ip", "link", "add", self.bridge, "type", "bridge")
            self._made.append(["ip", "link", "del", self.bridge])
            self._run("ip", "addr", "add", f"{self.world_ip}/{self.prefix}", "dev", self.bridge)
            self._run("ip", "link", "set", self.bridge, "up")
            for node in self.nodes.values():
                self._run("ip", "netns", "add", node.namespace)
                self._made.append(["ip", "netns", "del", node.namespace])
                if self.with_delays and len(self._made) == 2:
                    self._check_netem()
                self._run("ip", "link", "add", node.veth, "type", "veth", "peer", "name", "eth0",
                          "netns", node.namespace)
                self._run("ip", "link", "set", node.veth, "master", self.bridge, "up")
                self._run("ip", "-n", node.namespace, "addr", "add", f"{node.ip}/{self.prefix}",
                          "dev", "eth0")
                self._run("ip", "-n", node.namespace, "link", "set", "eth0", "up")
                self._run("ip", "-n", node.namespace, "link", "set", "lo", "up")
                self._delays(node)
        except BaseException:
            self.teardown()
            raise
        event(log, logging.INFO, "netns.ready", bridge=self.bridge, nodes=len(self.nodes))

    def _delays(self, node: NetnsNode) -> None:
        """An HTB tree on the node's eth0: class 1:1 (the default) undelayed, one class per fibre
        peer, selected by destination address, with a netem leaf of that fibre's delay."""
        peers = sorted(((self.nodes[y], d) for (x, y), d in self.delays.items() if x == node.address),
                       key=lambda pd: pd[0].address)
        if not peers or not self.with_delays:
            return
        ns = node.namespace
        tc = ("tc", "-n", ns)
        self._run(*tc, "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "1")
        self._run(*tc, "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:1", "htb",
                  "rate", "10gbit")
        for cls, (peer, delay_ps) in enumerate(peers, start=2):
            self._run(*tc, "class", "add", "dev", "eth0", "parent", "1:", "classid", f"1:{cls}", "htb",
                      "rate", "10gbit")
            self._run(*tc, "qdisc", "add", "dev", "eth0", "parent", f"1:{cls}", "handle",
                      f"{cls + 10}:", "netem", "delay", f"{delay_ps / 1e6:.3f}us")
            self._run(*tc, "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1",
                      "u32", "match", "ip", "dst", f"{peer.ip}/32", "flowid", f"1:{cls}")

    def _check_netem(self) -> None:
        """The kernel must offer the netem qdisc (module sch_netem); say so before anything runs."""
        probe = self._made[-1][-1] if self._made and self._made[-1][:3] == ["ip", "netns", "del"] else None
        if probe is None:
            return
        done = subprocess.run(["tc", "-n", probe, "qdisc", "add", "dev", "lo", "root", "netem", "delay",
                               "1us"], capture_output=True, text=True)
        if done.returncode != 0:
            raise QnodeError("--netns delays need the kernel's netem qdisc (module sch_netem), which "
                             f"this kernel does not offer: {done.stderr.strip()}")
        subprocess.run(["tc", "-n", probe, "qdisc", "del", "dev", "lo", "root"], capture_output=True)

    def teardown(self) -> None:
        for argv in reversed(self._made):
            subprocess.run(argv, capture_output=True)
        self._made.clear()

    # -- processes ----------------------------------------------------------------------------------
    def wrap(self, address: str, argv: list[str]) -> list[str]:
        """``argv`` run inside ``address``'s namespace (``ip netns exec`` keeps the pid)."""
        return ["ip", "netns", "exec", self.nodes[address].namespace, *argv]

    def qdiscs(self, address: str) -> str:
        """What ``tc`` says is on the node's interface (for records and tests)."""
        done = subprocess.run(["tc", "-n", self.nodes[address].namespace, "qdisc", "show", "dev", "eth0"],
                              capture_output=True, text=True)
        return done.stdout

    def derived_testbed(self) -> Path:
        """The testbed with every node's endpoints on its own address (same ports), as a file."""
        tb = self.testbed
        data = copy.deepcopy(tb.document.data)
        base = Path(tb.document.file).resolve().parent
        for i, entry in enumerate(data["nodes"]):
            cfg = tb.config.nodes[i]
            ip = self.nodes[cfg.address].ip
            overrides = dict(entry.get("overrides") or {}) if isinstance(entry, dict) else {}
            overrides["control"] = {**dict(overrides.get("control") or {}),
                                    "endpoint": _on(cfg.control.endpoint, ip, f"{cfg.address}.control")}
            if cfg.links:
                links = []
                for link in cfg.links:
                    d = link.model_dump(mode="json", exclude_none=True)
                    if link.herald_endpoint is not None:
                        d["herald_endpoint"] = _on(link.herald_endpoint, ip,
                                                   f"{cfg.address}.links[{link.neighbour}]")
                    links.append(d)
                overrides["links"] = links
            if isinstance(entry, dict) and "file" in entry:
                data["nodes"][i] = {"file": str((base / entry["file"]).resolve()), "overrides": overrides}
            else:
                raise ConfigError(f"node {cfg.address} is written inline; --netns needs node files",
                                  file=tb.document.file, field=f"nodes[{i}]")
        if data.get("keys_dir"):
            data["keys_dir"] = str((base / data["keys_dir"]).resolve())
        for key in ("include",):
            data.pop(key, None)
        path = self.run_dir / f"netns-{Path(tb.document.file).name}"
        path.write_text("# written by qnode testbed --netns: endpoints on each node's own address\n"
                        + yaml.safe_dump(data, sort_keys=False))
        return path


def _on(endpoint: str, ip: str, where: str) -> str:
    m = _ENDPOINT.match(endpoint)
    if m is None:
        raise ConfigError(f"endpoint {endpoint!r} is not tcp://host:port", field=where)
    return f"tcp://{ip}:{m.group(2)}"


__all__ = ["NetnsNode", "NetnsTestbed", "path_delays_ps"]
