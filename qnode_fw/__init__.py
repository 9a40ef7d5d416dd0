"""qnode-fw: control software for the node PCs of quantum-network lab testbeds."""

__version__ = "0.1.0"
