"""Experiments that run from YAML on a testbed (``qnode testbed TESTBED --experiment EXP``).

One module per kind, each registering itself (and its parameter model, so ``qnode validate``
checks an experiment's ``params:``) when this package is imported:

- :mod:`.repeater_chain`: heralded memory links, QRNA connection setup, swapping (and
  purification), pairs delivered to the application, fidelity by tomography on sacrificed pairs;
- :mod:`.spdc_distribution`: EPPS source to two photonic MEAS nodes, coincidences, CAR, CHSH,
  two-qubit tomography;
- :mod:`.link_calibration`: crystal temperature scan and detector delay calibration, written as a
  calibration YAML node files can include.

:mod:`.base` is the contract, :mod:`.runner` runs a kind on the virtual testbed, :mod:`.analysis`
holds the statistics.
"""

from . import link_calibration, repeater_chain, spdc_distribution  # noqa: F401  (each registers its kind)
from .base import SUMMARY_FIELDS, Experiment, Results, Summary, experiment_class, experiment_kinds
from .runner import RunOptions, RunResult, run_experiment

__all__ = ["SUMMARY_FIELDS", "Experiment", "Results", "RunOptions", "RunResult", "Summary",
           "experiment_class", "experiment_kinds", "run_experiment"]
