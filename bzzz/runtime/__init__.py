"""Wires one node together: home, config, identity, store."""
