"""The connection tests' simulated testbed lives in sim_backend/chain_testbed.py, shared with the
simulated-testbed benchmark; this module keeps the tests' short import path."""

from sim_backend.chain_testbed import (BORDER_CHAIN_INNER, LinkSpec, NodeStack, SimTestbed, border_chain,
                                      chain, chain_names)

__all__ = ["BORDER_CHAIN_INNER", "LinkSpec", "NodeStack", "SimTestbed", "border_chain", "chain",
           "chain_names"]
