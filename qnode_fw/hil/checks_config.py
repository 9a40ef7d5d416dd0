"""The ``checks:`` section of a bench file: durations and pass thresholds of the wiring checks.

Every field has a default that suits a bench with SNSPDs and a Swabian-class tagger; a lab tunes
them to its own bench (a slow oven needs a longer ``settle_timeout_s``, weak sources a longer
``count_ms``). Durations are in the unit their name says.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from qnode_fw.config.node import Strict


class TriggerCheck(Strict):
    """AWG burst of marker edges into the tagger: trigger-to-tag delay, jitter, cycle period."""

    samples: int = Field(1000, ge=8)
    sample_rate_hz: float = Field(250e6, gt=0)
    #: The sample where the marker rises in every cycle (one edge per cycle).
    marker_sample: int = Field(250, ge=0)
    cycles: int = Field(100, ge=2)
    amplitude_vpp: float = Field(0.1, gt=0)
    #: Time allowed after the burst for the last tag to arrive.
    margin_ms: float = Field(1.0, ge=0)
    #: Measured minus configured (cable + input delay) may differ by this much before calibration.
    delay_tolerance_ps: int = Field(2000, ge=0)
    max_jitter_rms_ps: float = Field(50.0, gt=0)

    @model_validator(mode="after")
    def _marker_inside(self):
        if self.marker_sample >= self.samples:
            raise ValueError(f"marker_sample {self.marker_sample} is past the waveform's {self.samples} samples")
        return self

    @property
    def cycle_ps(self) -> float:
        return self.samples * 1e12 / self.sample_rate_hz

    @property
    def burst_ps(self) -> int:
        return int(round(self.cycles * self.cycle_ps + self.margin_ms * 1e9))


class LightCheck(Strict):
    """Count rates with the pump on and off, and behind each switch output."""

    count_ms: float = Field(10.0, gt=0)
    #: Wait after a pump or switch change before counting (switching time, laser turn-on).
    settle_ms: float = Field(20.0, ge=0)
    #: A detector is lit at or above this rate, dark at or below ``dark_hz``.
    lit_hz: float = Field(5000.0, gt=0)
    dark_hz: float = Field(2000.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self):
        if self.dark_hz >= self.lit_hz:
            raise ValueError(f"dark_hz {self.dark_hz} must be below lit_hz {self.lit_hz}")
        return self


class CoincidenceCheck(Strict):
    """Signal-idler coincidence peak: its delay against the fibre lengths in the wiring."""

    record_ms: float = Field(20.0, gt=0)
    #: Half-width of the delay range searched for the peak.
    search_ps: int = Field(50_000, gt=0)
    bin_ps: int = Field(100, gt=0)
    #: Coincidence window used for counting (the temperature scan too).
    window_ps: int = Field(1000, gt=0)
    delay_tolerance_ps: int = Field(2000, ge=0)
    min_coincidences: int = Field(100, ge=1)


class ScanCheck(Strict):
    """Crystal temperature scan: the coincidence rate against the oven setpoint."""

    span_c: float = Field(6.0, gt=0)
    step_c: float = Field(0.25, gt=0)
    #: The peak must lie this close to the operating point's nominal temperature.
    tolerance_c: float = Field(0.5, gt=0)
    record_ms: float = Field(5.0, gt=0)
    #: A step counts once the measured temperature is this close to the setpoint.
    settle_tolerance_c: float = Field(0.02, gt=0)
    settle_timeout_s: float = Field(300.0, gt=0)
    poll_ms: float = Field(100.0, gt=0)

    @model_validator(mode="after")
    def _steps(self):
        if self.span_c / self.step_c < 4:
            raise ValueError(f"span_c {self.span_c} holds fewer than 4 steps of {self.step_c}")
        return self


class ChecksConfig(Strict):
    trigger: TriggerCheck = TriggerCheck()
    light: LightCheck = LightCheck()
    coincidence: CoincidenceCheck = CoincidenceCheck()
    scan: ScanCheck = ScanCheck()
    #: Time left between checks so nothing one check started reaches the next one's counts.
    guard_ms: float = Field(1.0, ge=0)
