"""Providers behind one interface: submit, wait (poll by request id), download."""

from sora_extend.providers.base import GenerationRequest, Outcome, Provider, Submission
from sora_extend.providers.registry import get_provider

__all__ = ["GenerationRequest", "Outcome", "Provider", "Submission", "get_provider"]
