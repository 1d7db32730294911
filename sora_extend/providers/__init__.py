"""Video providers behind one interface: submit, wait (poll by request id), download."""

from sora_extend.providers.base import GenerationRequest, Outcome, Submission, VideoProvider, get_provider

__all__ = ["GenerationRequest", "Outcome", "Submission", "VideoProvider", "get_provider"]
