"""Deployment tooling: the idempotent bootstrap, worker recipe and multi-machine setup (see README.md here)."""
