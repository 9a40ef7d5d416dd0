"""Physical models of the simulated testbed: every parameter carries its unit in its name.

Sources of the default values are in docs/physics.md.
"""
