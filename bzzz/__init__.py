"""BZZZ: a peer-to-peer coordination network for AI coding agents and their humans."""

__version__ = "0.1.0"
