"""The few typed errors a person can act on.

Every error that reaches a user names *where* the problem is: the file and line of a bad
configuration, the instrument resource and the last command sent, or the peer and message of a
protocol fault. Code raises these instead of bare exceptions for anything caused by input.
"""

from __future__ import annotations


class QnodeError(Exception):
    """Base of every error qnode-fw raises on purpose."""


class ConfigError(QnodeError):
    """A configuration file is wrong.

    ``file`` and ``line`` locate the problem (line is 1-based, None when unknown), ``field`` is the
    dotted path of the offending field (``nodes[1].links[0].fibre_km``), ``expected`` says what
    would have been accepted.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        self.expected = expected
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        text = f"{where}: "
        if self.field:
            text += f"{self.field}: "
        text += self.message
        if self.expected:
            text += f" (expected {self.expected})"
        return text


class ConfigErrors(ConfigError):
    """Several configuration errors found in one pass, reported together."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(
            first.message, file=first.file, line=first.line, field=first.field, expected=first.expected
        )

    def __str__(self) -> str:
        return "\n".join(ConfigError.__str__(e) for e in self.errors)


class InstrumentError(QnodeError):
    """An instrument refused, failed or did not answer.

    Names the VISA/serial/TCP resource, the last command sent and the instrument's own message.
    """

    def __init__(self, message: str, *, resource: str, command: str | None = None) -> None:
        self.message = message
        self.resource = resource
        self.command = command
        text = f"{resource}: {message}"
        if command is not None:
            text += f" (after command {command!r})"
        super().__init__(text)


class QubitRoleError(InstrumentError):
    """An operation needs a qubit of the other role: emission or absorption from a storage qubit,
    a move into a communication qubit (RFC 9340 §5.4.3: only communication qubits reach a link)."""


class InstrumentTimeout(InstrumentError):
    """No (complete) reply within the transport's timeout."""


class InstrumentDisconnected(InstrumentError):
    """The connection to the instrument was lost."""


class SafetyLimitError(InstrumentError):
    """A request exceeds a configured safety limit; nothing was sent to the instrument."""


class ProtocolError(QnodeError):
    """A peer sent something malformed, unexpected, unauthenticated or replayed."""

    def __init__(self, message: str, *, peer: str | None = None, msg_type: str | None = None) -> None:
        self.message = message
        self.peer = peer
        self.msg_type = msg_type
        text = message
        if msg_type:
            text = f"{msg_type}: {text}"
        if peer:
            text = f"peer {peer}: {text}"
        super().__init__(text)


class RuleSetError(QnodeError):
    """A RuleSet is malformed or unsafe; names the RuleSet, stage, rule and field."""

    def __init__(self, message: str, *, ruleset: str | None = None, rule: str | None = None,
                 field: str | None = None) -> None:
        self.message = message
        self.ruleset = ruleset
        self.rule = rule
        self.field = field
        parts = [p for p in (ruleset and f"ruleset {ruleset}", rule and f"rule {rule}",
                             field and f"field {field}") if p]
        super().__init__((", ".join(parts) + ": " if parts else "") + message)


class PeerDown(QnodeError):
    """A peer node stopped answering (heartbeats missed or process gone)."""

    def __init__(self, peer: str, reason: str) -> None:
        self.peer = peer
        self.reason = reason
        super().__init__(f"peer {peer} is down: {reason}")
