"""The connection tests' simulated testbed lives in sim_backend/chain_testbed.py, shared with the
simulated-testbed benchmark; this module keeps the tests' short import path."""

from sim_backend.chain_testbed import LinkSpec, NodeStack, SimTestbed, chain, chain_names

__all__ = ["LinkSpec", "NodeStack", "SimTestbed", "chain", "chain_names"]
