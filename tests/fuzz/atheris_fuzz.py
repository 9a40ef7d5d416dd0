"""Coverage-guided fuzzing of the same decoders with atheris (libFuzzer), outside ``make test``.

    pip install -e ".[fuzz]"
    python tests/fuzz/atheris_fuzz.py herald -atheris_runs=200000
    python tests/fuzz/atheris_fuzz.py envelope|ruleset-message|ruleset-yaml|config-yaml ...

Any exception other than the decoder's typed error is a finding: libFuzzer stops, prints it and
writes the input to ``crash-*`` for a regression test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _herald(data: bytes) -> None:
    from qnode_fw.errors import ProtocolError
    from timing.frames import FrameCodec
    for codec in (FrameCodec(), FrameCodec(bytes(range(32)))):
        try:
            codec.decode(data, peer="fuzz")
        except ProtocolError:
            pass


def _envelope(data: bytes) -> None:
    from qnode_fw.control.envelope import decode
    from qnode_fw.errors import ProtocolError
    try:
        decode(data, "fuzz")
    except ProtocolError:
        pass


def _ruleset_message(data: bytes) -> None:
    from qnode_fw.errors import ProtocolError
    from qnode_fw.ruleset.messages import message_from_wire
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return
    try:
        message_from_wire(value)
    except ProtocolError:
        pass


def _ruleset_yaml(data: bytes) -> None:
    from qnode_fw.errors import RuleSetError
    from qnode_fw.ruleset.checks import check_ruleset
    from qnode_fw.ruleset.serialise import from_yaml
    try:
        check_ruleset(from_yaml(data.decode("utf-8", "replace")))
    except RuleSetError:
        pass


def _config_yaml(data: bytes) -> None:
    from qnode_fw.config import NodeConfig, TestbedConfig, parse_model, parse_yaml
    from qnode_fw.errors import ConfigError
    try:
        doc = parse_yaml(data.decode("utf-8", "replace"), "fuzz.yaml")
        for model in (NodeConfig, TestbedConfig):
            try:
                parse_model(model, doc)
            except ConfigError:
                pass
    except ConfigError:
        pass


TARGETS = {"herald": _herald, "envelope": _envelope, "ruleset-message": _ruleset_message,
           "ruleset-yaml": _ruleset_yaml, "config-yaml": _config_yaml}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(TARGETS)}}} [libFuzzer options]")
    import atheris
    target = TARGETS[sys.argv.pop(1)]
    with atheris.instrument_imports():
        target(b"")   # import (and so instrument) the modules under test
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
