"""Simulated optical switch: routes light in the World's switch model; every command is logged
with its time, and light does not pass while the switch moves."""

from __future__ import annotations

from drivers.optical_switch import OpticalSwitch
from drivers.switch_common import check_ports

from ..physics.switch import SwitchParams
from .common import dataclass_from_options, limits_of, world_from_context


class SimOpticalSwitch(OpticalSwitch):
    """Simulated optical switch (insertion loss, switching time with no light)."""

    model = "sim"

    def __init__(self, name: str, world, clock, params: SwitchParams | None = None, limits=None) -> None:
        super().__init__(name, f"sim://switch/{name}")
        self.world = world
        self.clock = clock
        self.limits = limits
        self.model_state = world.switches.get(name) or world.add_switch(name, params)
        #: (time_ps, input, output) per command; output 0 = disconnect
        self.command_log: list[tuple[int, int, int]] = []

    @classmethod
    def from_config(cls, spec, context):
        world = world_from_context(spec, context)
        params = dataclass_from_options(SwitchParams, dict(spec.options), f"instruments.{spec.name}.options")
        return cls(spec.name, world, world.clock, params, limits_of(spec))

    def identify(self) -> str:
        return f"qnode-fw,SimOpticalSwitch,{self.name},sim"

    @property
    def num_inputs(self) -> int:
        return self.model_state.params.num_inputs

    @property
    def num_outputs(self) -> int:
        return self.model_state.params.num_outputs

    def _size(self) -> tuple[int, int]:
        return self.num_inputs, self.num_outputs

    def connect(self, input_port, output_port) -> None:
        from drivers.limits import SafetyLimits

        check_ports(self.limits or SafetyLimits(), self.resource, f"connect {input_port} {output_port}",
                    input_port, output_port, self._size)
        self._command(int(input_port), int(output_port))

    def disconnect(self, input_port) -> None:
        from drivers.limits import SafetyLimits

        check_ports(self.limits or SafetyLimits(), self.resource, f"disconnect {input_port}", input_port,
                    None, self._size)
        self._command(int(input_port), 0)

    def _command(self, input_port: int, output_port: int) -> None:
        now = self.clock.now_ps()
        self.world.advance(now)  # light generated so far saw the old route
        self.model_state.command(now, input_port, output_port)
        self.command_log.append((now, input_port, output_port))

    def connections(self) -> dict[int, int]:
        routes = {i: self.model_state.current(i) for i in range(1, self.num_inputs + 1)}
        return {i: o for i, o in routes.items() if o}

    def settled_at_ps(self, input_port: int = 1) -> int:
        """When light passes again after the last route change of ``input_port``."""
        entries = self.model_state.history.get(input_port, [(0, 0)])
        return entries[-1][0] + self.model_state.params.switching_time_ps
