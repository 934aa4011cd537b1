"""What a node does, written against ports (`ports.py`), never against a concrete adapter."""
