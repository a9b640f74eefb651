"""Experiments (PRODUCT.md §6): deterministic assignment, readouts and a bandit, as pure functions."""
