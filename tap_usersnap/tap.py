"""The Usersnap tap: its settings and its streams."""

from __future__ import annotations

import signal
import sys
import threading
import typing as t
from functools import cached_property, partial

import click
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.plugin_base import _ConfigInput
from singer_sdk.tap_base import CliTestOptionValue

from tap_usersnap.auth import UsersnapJWTAuthenticator
from tap_usersnap.cli import (
    UsersnapCommand,
    catalog_problem,
    checked_file,
    config_error,
    misplaced_secrets,
    read_config_file,
    unknown_boolean,
    unreadable_variable,
)
from tap_usersnap.completeness import check_projects_read
from tap_usersnap.errors import Interrupted, UsersnapError
from tap_usersnap.prefetch import Prefetcher
from tap_usersnap.ranges import RANGES_PER_CONCURRENCY
from tap_usersnap.reconcile import SETTING as RECONCILE_SETTING
from tap_usersnap.reconcile import activate_version, stamp_version
from tap_usersnap.run_report import RunReport
from tap_usersnap.state import normalize_timestamp, state_problem
from tap_usersnap.streams import (
    FeedbacksStream,
    ProjectAssigneesStream,
    ProjectMetricsStream,
    ProjectsStream,
)
from tap_usersnap.transport import RateLimitGate, shared_session
from tap_usersnap.writer import UsersnapMessageWriter

if t.TYPE_CHECKING:
    import requests

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if t.TYPE_CHECKING:
    from types import FrameType

STREAM_TYPES = (
    ProjectsStream,
    FeedbacksStream,
    ProjectAssigneesStream,
    ProjectMetricsStream,
)


def parent_name(stream_type: type[Stream]) -> str | None:
    """The name of the stream whose records ``stream_type`` is read for, if any."""
    return next((p.name for p in STREAM_TYPES if p is stream_type.parent_stream_type), None)


FILTER_TYPES = [
    "assignee",
    "created_at",
    "email",
    "feedback_number",
    "nps",
    "one_to_five",
    "state",
    "thumb",
]
FILTER_OPERATORS = ["eq", "neq", "in", "not_in", "gt", "gte", "lt", "lte", "like", "ilike"]
# JSON Schema leaves `format` unchecked here: a pattern makes a bad start_date fail early.
ISO_8601_DATE_TIME = (
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?$"
)


class TapUsersnap(Tap):
    """Singer tap for the Usersnap platform REST API v0.1."""

    name = "tap-usersnap"
    message_writer_class = UsersnapMessageWriter

    config_jsonschema = th.PropertiesList(
        th.Property(
            "jwt_id",
            th.StringType(min_length=1),
            required=True,
            title="JWT ID",
            description="The JWT ID from Usersnap's REST API settings; sent as the JWT `kid`.",
        ),
        th.Property(
            "jwt_secret",
            th.StringType(min_length=1),
            required=True,
            secret=True,
            title="JWT secret",
            description="The shared JWT secret from Usersnap's REST API settings; signs "
            "short-lived HS256 tokens and is never sent or logged.",
        ),
        th.Property(
            "api_url",
            th.URIType(pattern=r"^https?://[^\s/]+"),
            default="https://platform.usersnap.com/v0.1",
            title="API URL",
            description="Base URL of the Usersnap platform API.",
        ),
        th.Property(
            "project_ids",
            th.ArrayType(th.StringType(min_length=1)),
            title="Project IDs",
            description="Project IDs to sync. Default: every project `GET /projects` lists. "
            "An ID the API does not know fails the run.",
        ),
        th.Property(
            "start_date",
            th.DateTimeType(pattern=ISO_8601_DATE_TIME),
            title="Start date",
            description="Only feedback updated at or after this instant. Moved earlier than "
            "a project's bookmark covers, the project is read again down to it.",
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1, maximum=100),
            default=100,
            title="Page size",
            description="Feedback items per request (1-100).",
        ),
        th.Property(
            "filters",
            th.ArrayType(
                th.ObjectType(
                    th.Property(
                        "filter_type", th.StringType(allowed_values=FILTER_TYPES), required=True
                    ),
                    th.Property(
                        "operator", th.StringType(allowed_values=FILTER_OPERATORS), required=True
                    ),
                    th.Property("value", th.StringType, required=True),
                    additional_properties=False,
                )
            ),
            title="Feedback filters",
            description="Filters for `POST /projects/{id}/feedbacks/filter`, e.g. "
            '`[{"filter_type": "state", "operator": "eq", "value": "done"}]`. When set, '
            "feedbacks come from the filter endpoint, newest `updated_at` first. Changed "
            "filters re-read every project (a bookmark covers only its own filter set).",
        ),
        th.Property(
            "request_timeout",
            th.IntegerType(minimum=1, maximum=600),
            default=60,
            title="Request timeout",
            description="Seconds to wait for a response before retrying the request.",
        ),
        th.Property(
            "max_retries",
            th.IntegerType(minimum=0, maximum=20),
            default=8,
            title="Maximum retries",
            description="Retries of a request after a 429, a 5xx, a timeout, a dropped "
            "connection or a malformed body, with exponential backoff that `Retry-After` can "
            "only lengthen, at most 60 s a wait. A connection that cannot be opened gets at "
            "most 3 quick retries; certificate and DNS failures none.",
        ),
        th.Property(
            "jwt_lifetime_seconds",
            th.IntegerType(minimum=5, maximum=3600),
            default=300,
            title="JWT lifetime",
            description="Seconds each self-signed token is valid; a new one is signed before "
            "the current one expires.",
        ),
        th.Property(
            "max_concurrency",
            th.IntegerType(minimum=1, maximum=16),
            default=4,
            title="Maximum concurrency",
            description="Projects fetched at the same time. Records, state and "
            "resumability do not depend on it.",
        ),
        th.Property(
            RECONCILE_SETTING,
            th.BooleanType,
            default=False,
            title="Reconcile (emit ACTIVATE_VERSION)",
            description="Reconcile: after a run that read every project completely, send one "
            "`ACTIVATE_VERSION` for each stream read FULL_TABLE, so the loader removes (or "
            "soft-deletes) the rows the API no longer lists. None at the start, none after a "
            "failed or interrupted run, none when `project_ids` is set. Pair it with a catalog "
            "forcing FULL_TABLE on feedbacks (the `tap-usersnap-reconcile` plugin).",
        ),
    ).to_dict()

    @override
    @classmethod
    def invoke(
        cls,
        *,
        state: t.IO[str] | None = None,
        catalog: t.IO[str] | None = None,
        **kwargs: t.Any,
    ) -> None:
        """Refuse, naming it, a state or catalog file that is not one.

        Resuming from a misread state could skip data.
        """
        if state is not None:
            state = checked_file(state, state_problem, "'--state'")
        if catalog is not None:
            parents = {  # each stream's name, and its parent's (None: it has none)
                child.name: parent_name(child) for child in STREAM_TYPES
            }
            problem = partial(catalog_problem, parents=parents)
            catalog = checked_file(catalog, problem, "'--catalog'")
        super().invoke(state=state, catalog=catalog, **kwargs)

    @override
    @classmethod
    def get_singer_command(cls) -> click.Command:
        """The SDK's command, reporting an expected failure as one line (see ``cli``)."""
        return UsersnapCommand.of(super().get_singer_command(), logger=cls.logger)

    @override
    @classmethod
    def cb_config(cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]) -> t.Any:
        """The SDK's merge of config files, each read once, naming a bad one.

        The SDK names no missing or malformed file, and reads each twice: a pipe
        (``--config <(...)``) is empty the second time.
        """
        config: dict[str, t.Any] = {}
        for path in value:
            if path != "ENV":
                config |= read_config_file(path)
        return _ConfigInput(config=config, parse_env="ENV" in value)

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        #: Why a project's lists could not be read, by project id and stream: the run goes on.
        self.refused_projects: dict[str, dict[str, str]] = {}
        #: Reads that may have missed rows, by stream and project id (or path): no reconcile.
        self.incomplete_reads: dict[str, dict[str, str]] = {}
        env_prefix = self._env_var_prefix if kwargs.get("parse_env_config") else None
        try:
            super().__init__(*args, **kwargs)
        except ConfigValidationError as exc:
            raise config_error(
                exc.errors, self.config_jsonschema, env_prefix, getattr(self, "_config", None)
            ) from None
        except ValueError:  # the SDK's reading of a variable (--config ENV), naming neither
            if env_prefix and (error := unreadable_variable(self.config_jsonschema, env_prefix)):
                raise error from None
            raise
        if env_prefix and (error := unknown_boolean(self.config_jsonschema, env_prefix)):
            raise error
        if errors := self._semantic_config_errors():
            raise config_error(errors, self.config_jsonschema, env_prefix, self.config)

    def _semantic_config_errors(self) -> list[str]:
        """What JSON Schema cannot check: a bad date, settings that clash, a misplaced secret."""
        errors = []
        start_date = self.config.get("start_date")
        try:
            normalize_timestamp(start_date)
        except ValueError as exc:
            errors.append(
                f"{start_date!r} is not a valid date-time ({exc}) in config['start_date']"
            )
        errors += misplaced_secrets(self.config, self.config_jsonschema)
        if self.config.get(RECONCILE_SETTING) and self.config.get("batch_config"):
            errors.append(
                f"config['{RECONCILE_SETTING}'] and config['batch_config'] cannot be combined: "
                "BATCH messages carry no version, so ACTIVATE_VERSION would remove the rows "
                "they load"
            )
        return errors

    @override
    def _setup_signal_handlers(self) -> None:
        """The SDK's (SIGINT, SIGTERM), and SIGHUP: a closed session stops a run the same way.

        Unless SIGHUP is ignored (``nohup``): then the run is meant to outlive the session.
        """
        super()._setup_signal_handlers()
        if (
            hasattr(signal, "SIGHUP")
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN
        ):
            signal.signal(signal.SIGHUP, self._handle_termination)

    @override
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """Stop where the main thread is, never inside a message: ``sync_all`` ends the run.

        The SDK's handler writes the state from inside the signal handler, wherever it lands.
        """
        writer = self.__dict__.get("message_writer")
        if not isinstance(writer, UsersnapMessageWriter):
            raise Interrupted(signum)  # still starting: nothing written, nothing to add
        writer.interrupt(signum)

    @override  # type: ignore[misc]  # final in the SDK, yet the one place that ends a run
    def sync_all(self) -> None:
        """Sync, then end as the run went: the last STATE always out before any failure.

        After a signal, the state as it stands names only written records. Projects the API
        refused were skipped with their bookmarks left as they were; the run fails naming them.
        Only a run that ends well sends ACTIVATE_VERSION (``reconcile``).
        """
        stamp_version(self)
        try:
            super().sync_all()
        except Interrupted:
            self.state_writer.write_state(self.state)
            raise
        finally:
            t.cast("UsersnapMessageWriter", self.message_writer).run_ended()
        if self.refused_projects:
            reasons = "; ".join(
                f"{project_id} {stream}: {why}"
                for project_id, refusals in self.refused_projects.items()
                for stream, why in refusals.items()
            )
            msg = (
                f"Usersnap refused {len(self.refused_projects)} project(s) and the tap synced "
                f"everything else. Check access to them: {reasons}"
            )
            raise UsersnapError(msg)
        check_projects_read(self)
        activate_version(self)

    @override
    def discover_streams(self) -> list[Stream]:
        return [stream_type(self) for stream_type in STREAM_TYPES]

    @cached_property
    def authenticator(self) -> UsersnapJWTAuthenticator:
        """One token cache for every stream and worker."""
        return UsersnapJWTAuthenticator(
            jwt_id=self.config["jwt_id"],
            jwt_secret=self.config["jwt_secret"],
            lifetime_seconds=self.config["jwt_lifetime_seconds"],
        )

    @cached_property
    def run_report(self) -> RunReport:
        """What the run did: progress lines while it runs, a summary line per stream."""
        return RunReport(self.logger)

    @override
    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """The SDK's connection test (a record of each stream), saying when it passed."""
        try:
            super().cb_test(ctx, param, value)
        except click.exceptions.Exit as done:
            if done.exit_code == 0 and value == CliTestOptionValue.All.value:
                cls.logger.info(
                    "Connection test passed: Usersnap accepted the credentials "
                    "and answered a request of every stream"
                )
            raise

    @cached_property
    def rate_limit_gate(self) -> RateLimitGate:
        """One pause for every request after the API answers 429."""
        return RateLimitGate()

    @cached_property
    def prefetcher(self) -> Prefetcher:
        """Workers that fetch upcoming projects while the current one is emitted.

        Jobs start in order, a job a project and child stream: with a worker for each child
        stream of ``max_concurrency`` projects, that many projects are fetched at once.
        """
        children = sum(1 for stream in self.streams.values() if stream.parent_stream_type)
        return Prefetcher(workers=self.config["max_concurrency"] * children)

    @cached_property
    def range_request_slots(self) -> threading.Semaphore:
        """Requests of parallel created_at ranges in flight at once, across all projects."""
        return threading.Semaphore(RANGES_PER_CONCURRENCY * self.config["max_concurrency"])

    @cached_property
    def http_session(self) -> requests.Session:
        """One connection pool, sized for the concurrent workers and ranges, behind the 429 gate."""
        return shared_session(
            self.config["api_url"],
            self.rate_limit_gate,
            self.authenticator,
            pool_size=self.prefetcher.workers
            + RANGES_PER_CONCURRENCY * self.config["max_concurrency"],
        )
