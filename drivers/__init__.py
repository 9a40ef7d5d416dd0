"""Instrument drivers: one interface per instrument kind, concrete drivers per instrument model.

Interfaces: :mod:`drivers.awg`, :mod:`drivers.time_tagger`, :mod:`drivers.optical_switch`,
:mod:`drivers.pair_source`, :mod:`drivers.qnic`. The simulated instruments in :mod:`sim_backend`
implement the same interfaces, so which one a node gets is one line of YAML.
"""
