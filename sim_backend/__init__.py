"""Simulated instruments behind the driver interfaces, and protocol emulators for the real drivers."""
