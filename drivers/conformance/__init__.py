"""Conformance checks per driver interface: the behaviour every driver of a kind must show,
whatever its model. They run unchanged against every real driver on its protocol emulator and
against the simulated instruments in the test suite, and on a lab bench through ``qnode hil``.

- :mod:`.instruments`: AWG, time tagger, optical switch, photon-pair source (``CHECKS``, ``LIMITS``).
- :mod:`.qnic`: the QNIC interface (``QNIC_CHECKS``).
"""

from .instruments import CHECKS, LIMITS
from .qnic import QNIC_CHECKS

__all__ = ["CHECKS", "LIMITS", "QNIC_CHECKS"]
