"""A loopback imitation of the Usersnap REST API v0.1 for tests, demos and benchmarks."""

from tap_usersnap.sandbox.errors import ApiError
from tap_usersnap.sandbox.server import Faults, Sandbox
from tap_usersnap.sandbox.store import SandboxStore

__all__ = ["ApiError", "Faults", "Sandbox", "SandboxStore"]
