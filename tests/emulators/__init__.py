"""Loopback emulators of the video and planner providers, for tests that drive the real SDK clients.

Fakes live only at this network edge: `fal_client` and `openai` send real HTTP to these servers, which
speak the providers' wire protocols and render real MP4s with the offline preview renderer.
"""

from tests.emulators.fal import FalEmulator, FalSubmission
from tests.emulators.faults import Fault
from tests.emulators.openai_api import OpenAIEmulator, VideoSubmission

__all__ = ["FalEmulator", "FalSubmission", "Fault", "OpenAIEmulator", "VideoSubmission"]
