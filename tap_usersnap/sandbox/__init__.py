"""A loopback imitation of the Usersnap REST API v0.1 for tests, demos and benchmarks."""

from tap_usersnap.sandbox.data import ApiError, SandboxStore
from tap_usersnap.sandbox.server import Faults, Sandbox

__all__ = ["ApiError", "Faults", "Sandbox", "SandboxStore"]
