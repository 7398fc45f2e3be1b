"""The SDK's standard tap tests, against a sandbox on loopback."""

from __future__ import annotations

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_usersnap.sandbox import Sandbox
from tap_usersnap.tap import TapUsersnap
from tests.helpers import JWT_ID, JWT_SECRET, base_config

# The standard tests discover streams when the module is collected: the sandbox must
# be serving by then, and for the whole module.
SANDBOX = Sandbox(jwt_id=JWT_ID, jwt_secret=JWT_SECRET, projects=2, feedbacks_per_project=[60, 25])
SANDBOX.start()

TestTapUsersnap = get_tap_test_class(
    tap_class=TapUsersnap,
    config=base_config(SANDBOX.url, page_size=20),
    suite_config=SuiteConfig(max_records_limit=None),
)


def teardown_module() -> None:
    SANDBOX.stop()
