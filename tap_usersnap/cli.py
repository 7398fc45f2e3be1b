"""The command line: an expected failure ends as one ERROR line, exit code 1, no traceback.

Every expected failure is a ``UsersnapError`` by the time it reaches the command: the
transport, the streams and the config checks raise one, naming the cause and what to
check. Anything else is a bug and keeps its traceback. With the SDK's log level at DEBUG
(``TAP_USERSNAP_LOGLEVEL=DEBUG``) the one line carries the traceback too.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import typing as t
from pathlib import Path

import click
from singer_sdk.plugin_base import SingerCommand

from tap_usersnap.errors import UsersnapError

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override


class ConfigError(UsersnapError):
    """Settings the tap cannot run with."""


class UsersnapCommand(SingerCommand):
    """The SDK's Singer command, reporting a ``UsersnapError`` as one line."""

    @classmethod
    def of(cls, command: click.Command, *, logger: logging.Logger) -> UsersnapCommand:
        """The same command (name, options, callback), with this class's reporting."""
        return cls(
            name=command.name,
            callback=command.callback,
            params=command.params,
            help=command.help,
            context_settings=command.context_settings,
            logger=logger,
        )

    @override
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """A file option naming no readable file (``--state``, ``--catalog``) is one line."""
        try:
            return super().parse_args(ctx, args)
        except click.BadParameter as exc:
            raise UsersnapError(exc.format_message()) from None

    @override
    def invoke(self, ctx: click.Context) -> t.Any:
        """An input the tap refuses with click's exception (``--state``) is one line too."""
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            raise UsersnapError(exc.format_message()) from None

    @override
    def main(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            return super().main(*args, **kwargs)
        except UsersnapError as exc:
            debug = self.logger.isEnabledFor(logging.DEBUG)
            self.logger.error("%s", exc, exc_info=exc if debug else None)
            sys.exit(1)


def check_config_file(path: str) -> None:
    """Refuse, naming it, a config file that cannot be read or holds no JSON object.

    Raises:
        ConfigError: naming the file and the reason.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"Cannot read the config file {path} ({exc.strerror or exc}): check --config"
        raise ConfigError(msg) from None
    try:
        settings = json.loads(text)
    except ValueError as exc:
        msg = f"The config file {path} is not valid JSON ({exc}): fix it, or check --config"
        raise ConfigError(msg) from None
    if not isinstance(settings, dict):
        msg = f"The config file {path} holds no JSON object of settings: check --config"
        raise ConfigError(msg)


def catalog_problem(text: str) -> str | None:
    """What makes ``text`` no Singer catalog the SDK can read, if anything."""
    try:
        catalog = json.loads(text)
    except ValueError as exc:
        return f"not valid JSON ({exc})"
    streams = catalog.get("streams", []) if isinstance(catalog, dict) else None
    if not isinstance(streams, list) or not all(
        isinstance(stream, dict)
        and isinstance(stream.get("tap_stream_id"), str)
        and isinstance(stream.get("schema", {}), dict)
        and isinstance(stream.get("metadata", []), list)
        for stream in streams
    ):
        return (
            "not a Singer catalog: expected an object with a 'streams' list of objects, "
            "each with a 'tap_stream_id', a 'schema' object and a 'metadata' list"
        )
    return None


def checked_file(
    file: t.IO[str], problem_of: t.Callable[[str], str | None], option: str
) -> t.IO[str]:
    """The file's text, once it is known to be what ``option`` asks for.

    Raises:
        click.BadParameter: naming the option, the file and the problem.
    """
    text = file.read()
    if problem := problem_of(text):
        raise click.BadParameter(f"{getattr(file, 'name', '?')!r}: {problem}", param_hint=option)
    return io.StringIO(text)


def config_error(errors: list[str], config_jsonschema: dict[str, t.Any]) -> ConfigError:
    """One line for every problem with the settings; a secret's value is never shown.

    ``errors`` are the SDK's messages (``... in config['name']``), which quote the value.
    """
    properties = config_jsonschema.get("properties", {})
    secrets = [name for name, schema in properties.items() if schema.get("secret")]
    problems = []
    for error in errors:
        secret = next((name for name in secrets if f"config[{name!r}]" in error), None)
        if secret is not None:
            error = (
                f"config[{secret!r}] must be {_expected(properties[secret])} "
                "(the value is a secret: not shown)"
            )
        problems.append(error)
    return ConfigError(f"Invalid settings: {'; '.join(problems)}: check the config")


def _expected(schema: dict[str, t.Any]) -> str:
    """What a setting's schema asks for, in words: 'a non-empty string'."""
    kinds = schema.get("type", "value")
    kind = next(k for k in ([kinds] if isinstance(kinds, str) else kinds) if k != "null")
    return f"a {'non-empty ' if schema.get('minLength') else ''}{kind}"
