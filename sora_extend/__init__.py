"""Sora Extend: one prompt in, a planned, chained and merged long video out.

This package holds the domain code (models, planners, providers, media, storage). It imports no
Prefect so every piece is usable and testable on its own; `flows/` and `tasks/` orchestrate it.
"""

__version__ = "0.1.0"
