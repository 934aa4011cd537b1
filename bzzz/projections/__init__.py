"""Read models over the notification log: exactly once, resumable, rebuildable."""

from bzzz.projections.framework import Projection, ProjectionRunner

__all__ = ["Projection", "ProjectionRunner"]
