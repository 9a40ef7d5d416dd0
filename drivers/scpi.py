"""A small declarative base for text (SCPI and SCPI-like) instruments.

In the spirit of PyMeasure's ``Instrument.control``/``measurement``: a driver declares its
settings as class attributes, and the base does formatting, parsing, limits and error checks::

    class Source(TextInstrument):
        transport = "visa"
        amplitude_vpp = Control("SOUR{ch}:VOLT?", "SOUR{ch}:VOLT {value}", limit="amplitude_vpp")
        temperature_c = Measurement("MEAS:TEMP?")

    src.amplitude_vpp[1] = 2.0      # checks the safety limit, sends "SOUR1:VOLT 2", then SYST:ERR?
    src.temperature_c               # sends "MEAS:TEMP?", parses the float or raises InstrumentError

A command containing ``{ch}`` makes the attribute indexable by channel. Safety limits (from the
node YAML) and the instrument's own range (``bounds``) are both checked before anything is sent.
"""

from __future__ import annotations

import re
from typing import Any, Callable, ClassVar, Mapping

from qnode_fw.errors import InstrumentError

from .instrument import Instrument
from .limits import SafetyLimits
from .transports import Backoff, Session, TransportSettings, make_transport

_ERROR_REPLY = re.compile(r'^\s*([+-]?\d+)\s*,\s*"?(.*?)"?\s*$')


def _on_off(reply: str) -> bool:
    token = reply.strip().upper()
    if token in ("1", "ON"):
        return True
    if token in ("0", "OFF"):
        return False
    raise ValueError(f"not a boolean: {reply!r}")


class Control:
    """A setting with a query (``get_command``) and a set command (``set_command``)."""

    def __init__(self, get_command: str | None, set_command: str | None = None, *,
                 doc: str = "", limit: str | None = None, bounds: tuple[float, float] | None = None,
                 choices: Mapping[Any, str] | None = None, cast: Callable[[str], Any] = float,
                 value_format: str = "{:g}", check_errors: bool = True) -> None:
        self.get_command = get_command
        self.set_command = set_command
        self.limit = limit
        self.bounds = bounds
        self.choices = dict(choices) if choices else None
        self.cast = cast
        self.value_format = value_format
        self.check_errors = check_errors
        self.__doc__ = doc
        self.name = ""
        self.channelled = any(c and "{ch}" in c for c in (get_command, set_command))

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, inst: "TextInstrument | None", owner: type):
        if inst is None:
            return self
        if self.channelled:
            return _ChannelAccess(self, inst)
        return self.get(inst)

    def __set__(self, inst: "TextInstrument", value: Any) -> None:
        if self.channelled:
            raise AttributeError(f"{self.name} is per channel: use .{self.name}[channel] = value")
        self.set(inst, value)

    def encode(self, inst: "TextInstrument", value: Any, ch: int | None) -> str:
        """The exact command for ``value``; raises before anything is sent if it is not allowed."""
        if self.set_command is None:
            raise AttributeError(f"{self.name} is read-only")
        preview = self.set_command.format(ch=ch, value=value)
        if self.choices is not None:
            if value not in self.choices:
                raise InstrumentError(f"{self.name}={value!r} is not one of {sorted(map(str, self.choices))}; "
                                      "nothing was sent", resource=inst.resource, command=preview)
            token = self.choices[value]
        else:
            number = float(value)
            if self.limit is not None:
                inst.limits.check(self.limit, number, resource=inst.resource, command=preview)
            if self.bounds is not None and not self.bounds[0] <= number <= self.bounds[1]:
                raise InstrumentError(f"{self.name}={value} is outside the instrument's range "
                                      f"{list(self.bounds)}; nothing was sent",
                                      resource=inst.resource, command=preview)
            token = self.value_format.format(value)
        return self.set_command.format(ch=ch, value=token)

    def set(self, inst: "TextInstrument", value: Any, ch: int | None = None) -> None:
        inst.write(self.encode(inst, value, ch), check=self.check_errors)

    def get(self, inst: "TextInstrument", ch: int | None = None) -> Any:
        if self.get_command is None:
            raise AttributeError(f"{self.name} is write-only")
        command = self.get_command.format(ch=ch)
        reply = inst.query(command)
        if self.choices is not None:
            reverse = {token.upper(): value for value, token in self.choices.items()}
            token = reply.strip().upper()
            if token in reverse:
                return reverse[token]
            if set(self.choices) == {True, False}:
                return inst.parse(reply, _on_off, command)
            raise InstrumentError(f"unexpected reply {reply!r}", resource=inst.resource, command=command)
        return inst.parse(reply, self.cast, command)


class Measurement(Control):
    """A read-only quantity."""

    def __init__(self, get_command: str, *, doc: str = "", cast: Callable[[str], Any] = float) -> None:
        super().__init__(get_command, None, doc=doc, cast=cast)


class _ChannelAccess:
    __slots__ = ("control", "inst")

    def __init__(self, control: Control, inst: "TextInstrument") -> None:
        self.control, self.inst = control, inst

    def __getitem__(self, ch: int) -> Any:
        return self.control.get(self.inst, ch)

    def __setitem__(self, ch: int, value: Any) -> None:
        self.control.set(self.inst, value, ch)


class TextInstrument(Instrument):
    """Base of drivers that exchange text commands over a :class:`Session`."""

    transport: ClassVar[str] = "visa"
    write_termination: ClassVar[bytes] = b"\n"
    read_termination: ClassVar[bytes] = b"\n"
    #: Query for the error queue, checked after every setting; None when the protocol has none.
    error_query: ClassVar[str | None] = "SYST:ERR?"
    default_timeout_s: ClassVar[float] = 2.0
    #: Transport options used unless the YAML overrides them (serial line settings).
    default_options: ClassVar[dict] = {}

    def __init__(self, name: str, resource: str, session: Session, limits: SafetyLimits | None = None,
                 options: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, resource)
        self.session = session
        self.limits = limits or SafetyLimits()
        self.options = dict(options or {})

    @classmethod
    def open_session(cls, resource: str, options: Mapping[str, Any]) -> Session:
        merged = {**cls.default_options, **dict(options)}
        settings = TransportSettings(timeout_s=float(merged.get("timeout_s", cls.default_timeout_s)),
                                     write_termination=cls.write_termination,
                                     read_termination=cls.read_termination, options=merged)
        backoff = Backoff(attempts=int(merged.get("reconnect_attempts", 5)),
                          initial_s=float(merged.get("reconnect_initial_s", 0.05)),
                          max_s=float(merged.get("reconnect_max_s", 2.0)))
        try:
            transport = make_transport(cls.transport, resource, settings)
        except ValueError as exc:
            raise InstrumentError(str(exc), resource=resource) from None
        return Session(transport, backoff=backoff)

    @classmethod
    def from_config(cls, spec, context=None):
        session = cls.open_session(spec.resource, spec.options)
        inst = cls(spec.name, spec.resource, session, SafetyLimits(spec.limits), spec.options)
        session.connect()
        return inst

    # -- exchanges ------------------------------------------------------------------------
    def write(self, command: str, check: bool = True) -> None:
        with self.session.lock:
            self.session.write(command)
            if check:
                self.check_errors(command)

    def query(self, command: str) -> str:
        return self.session.query(command)

    def parse(self, reply: str, cast: Callable[[str], Any], command: str) -> Any:
        try:
            return cast(reply.strip())
        except (ValueError, TypeError):
            raise InstrumentError(f"garbled reply {reply!r}", resource=self.resource, command=command) from None

    def check_errors(self, command: str) -> None:
        """Drain the error queue; raise naming ``command`` and every message if it held errors."""
        if self.error_query is None:
            return
        messages = []
        for _ in range(32):  # a real queue holds at most a few dozen entries
            reply = self.query(self.error_query)
            match = _ERROR_REPLY.match(reply)
            if match is None:
                raise InstrumentError(f"garbled error-queue reply {reply!r}", resource=self.resource,
                                      command=command)
            if int(match.group(1)) == 0:
                break
            messages.append(f"{match.group(1)},{match.group(2)}")
        if messages:
            raise InstrumentError("instrument reported " + "; ".join(messages),
                                  resource=self.resource, command=command)

    def identify(self) -> str:
        return self.query("*IDN?").strip()

    def close(self) -> None:
        self.session.close()


def ieee_block(payload: bytes) -> bytes:
    """IEEE 488.2 definite-length block: ``#`` + digit count + length + payload."""
    length = str(len(payload))
    if len(length) > 9:
        raise ValueError("payload too large for a definite-length block")
    return b"#" + str(len(length)).encode() + length.encode() + payload
