"""Exact density-matrix engine for simulated memory qubits (see :mod:`.registry`)."""

from .noise import Decoherence
from .operators import BELL_ORDER, bell_diagonal_state, bell_vector, werner_state
from .registry import QuantumRegistry, QubitGroup, QubitKey

__all__ = ["BELL_ORDER", "Decoherence", "QuantumRegistry", "QubitGroup", "QubitKey",
           "bell_diagonal_state", "bell_vector", "werner_state"]
