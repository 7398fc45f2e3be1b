"""The command line: an expected failure ends as one ERROR line, exit code 1, no traceback.

Every expected failure is a ``UsersnapError`` by the time it reaches the command: the
transport, the streams and the config checks raise one, naming the cause and what to
check. Anything else is a bug and keeps its traceback. With the SDK's log level at DEBUG
(``TAP_USERSNAP_LOGLEVEL=DEBUG``) the one line carries the traceback too.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import typing as t
from pathlib import Path

import click
from singer_sdk.configuration._dict_config import TRUTHY, parse_environment_config
from singer_sdk.exceptions import MappingError
from singer_sdk.helpers._typing import is_boolean_type
from singer_sdk.helpers._util import load_json
from singer_sdk.plugin_base import SingerCommand
from singer_sdk.singerlib import Catalog, StreamMetadata

from tap_usersnap.errors import UsersnapError

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

#: What the SDK reads as false from a variable; it reads any value it does not know so too.
FALSY = ("false", "0", "no", "off")


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
        """A wrong option, or a file option naming no readable file, is one line.

        The SDK runs ``--test`` from here: whatever fails, the files click opened for the
        options are closed (else Python warns of each, after the one line).
        """
        try:
            with expected_failures():
                return super().parse_args(ctx, args)
        except BaseException:
            ctx.close()
            raise

    @override
    def invoke(self, ctx: click.Context) -> t.Any:
        """An input the tap refuses with click's exception (``--state``) is one line too."""
        with expected_failures():
            return super().invoke(ctx)

    @override
    def main(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            return super().main(*args, **kwargs)
        except UsersnapError as exc:
            debug = self.logger.isEnabledFor(logging.DEBUG)
            self.logger.error("%s", exc, exc_info=exc if debug else None)
            sys.exit(1)


@contextlib.contextmanager
def expected_failures() -> t.Iterator[None]:
    """Click's refusals and a stream map the SDK cannot apply, as a ``UsersnapError``."""
    try:
        yield
    except click.ClickException as exc:
        raise UsersnapError(exc.format_message()) from None
    except MappingError as exc:
        msg = f"Invalid stream_maps ({exc}): check the setting stream_maps"
        raise UsersnapError(msg) from None


def read_config_file(path: str) -> dict[str, t.Any]:
    """The settings of a config file, read once (a pipe, ``<(...)``, can be read only once).

    Raises:
        ConfigError: naming the file and why it cannot be read, or holds no JSON object.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"Cannot read the config file {path} ({exc.strerror or exc}): check --config"
        raise ConfigError(msg) from None
    except UnicodeDecodeError as exc:
        msg = f"The config file {path} is not {_utf8_problem(exc)}: save it so, or check --config"
        raise ConfigError(msg) from None
    try:
        settings = json.loads(text)
    except ValueError as exc:
        msg = f"The config file {path} is not valid JSON ({exc}): fix it, or check --config"
        raise ConfigError(msg) from None
    if not isinstance(settings, dict):
        msg = f"The config file {path} holds no JSON object of settings: check --config"
        raise ConfigError(msg)
    return load_json(text)  # as the SDK reads it (decimals stay exact)


def catalog_problem(text: str, parents: t.Mapping[str, str | None]) -> str | None:
    """What makes ``text`` no Singer catalog of the tap's streams, if anything.

    ``parents``: each stream of the tap, by name, and its parent's (None: it has none).
    The SDK skips a stream it does not know: a catalog of none would sync nothing, and
    end well. A child stream without its parent's entry ends in the SDK's ``KeyError``.
    """
    known = list(parents)
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
    if not streams:
        return "a catalog of no stream (it would sync nothing): use a catalog of --discover"
    if unknown := [s["tap_stream_id"] for s in streams if s["tap_stream_id"] not in known]:
        return (
            f"no stream of this tap is called {', '.join(map(repr, unknown))} (it has "
            f"{', '.join(known)}): use a catalog of --discover"
        )
    listed = {s["tap_stream_id"] for s in streams}
    if orphans := [child for child in listed if parents[child] not in {None, *listed}]:
        parent = parents[orphans[0]]
        return (
            f"{', '.join(map(repr, sorted(orphans)))} without {parent!r}, whose records they "
            f"are read for: add its entry (selected or not), as --discover writes it"
        )
    return _entries_problem(catalog)


def _entries_problem(catalog: dict[str, t.Any]) -> str | None:
    """What in the catalog's entries the SDK would fail on with a traceback, or misread.

    An entry listed twice (the last one wins) or a ``selected`` that is no boolean (the
    string "false" selects) would sync other streams than the catalog seems to say.
    """
    ids = [stream["tap_stream_id"] for stream in catalog["streams"]]
    if twice := sorted({name for name in ids if ids.count(name) > 1}):
        return f"{', '.join(map(repr, twice))} listed more than once: keep one entry each"
    try:
        entries = Catalog.from_dict(catalog).streams
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        msg = f"not a catalog the Singer SDK can read ({type(exc).__name__}: {exc})"
        return f"{msg}: use a catalog of --discover"
    for entry in entries:
        name = entry.tap_stream_id
        if entry.stream not in (None, name):
            return f"the entry of {name!r} names another stream ({entry.stream!r})"
        for metadata in entry.metadata.values():
            if metadata.selected not in (None, True, False):
                return f"'selected' of {name!r} is {metadata.selected!r}: true or false"
        root = entry.metadata.get(())
        key = entry.replication_key or (
            root.replication_key if isinstance(root, StreamMetadata) else None
        )
        if key and key not in (entry.schema.properties or {}):
            return f"the schema of {name!r} has no property {key!r}, its replication key"
    return None


def checked_file(
    file: t.IO[str], problem_of: t.Callable[[str], str | None], option: str
) -> t.IO[str]:
    """The file's text, once it is known to be what ``option`` asks for.

    Raises:
        click.BadParameter: naming the option, the file and the problem.
    """
    try:
        text = file.read()
    except UnicodeDecodeError as exc:
        problem: str | None = f"not {_utf8_problem(exc)}"
    else:
        problem = problem_of(text)
    if problem:
        raise click.BadParameter(f"{getattr(file, 'name', '?')!r}: {problem}", param_hint=option)
    return io.StringIO(text)


def _utf8_problem(error: UnicodeDecodeError) -> str:
    """Why a file is no text: where, and never what (a secret's bytes may be there)."""
    return f"UTF-8 text (byte {error.start} cannot be read)"


#: A secret at least this long found in another setting refuses the settings: shorter, it
#: may be there by chance.
MIN_SECRET_TO_REFUSE = 8


def secrets_of(
    config: t.Mapping[str, t.Any] | None, config_jsonschema: dict[str, t.Any]
) -> dict[str, str]:
    """The values of the secret settings that are set, as text, by setting name."""
    return {
        name: str(value)
        for name, schema in config_jsonschema.get("properties", {}).items()
        if schema.get("secret") and (value := (config or {}).get(name)) not in (None, "")
    }


def misplaced_secrets(
    config: t.Mapping[str, t.Any], config_jsonschema: dict[str, t.Any]
) -> list[str]:
    """Settings a secret was pasted into: their values would be shown in errors and logs."""
    secrets = secrets_of(config, config_jsonschema)
    return [
        f"config[{name!r}] holds the value of {secret_name} (not shown): a secret belongs "
        "in its own setting alone"
        for name, value in config.items()
        if name not in secrets
        for secret_name, secret in secrets.items()
        if len(secret) >= MIN_SECRET_TO_REFUSE and secret in str(value)
    ]


def _quotes_a_secret(error: str, value: t.Any, secrets: t.Iterable[str]) -> bool:
    """Whether ``error`` quotes ``value`` (as JSON Schema does: ``repr``), which holds a secret."""
    text = str(value)
    return any(secret in text for secret in secrets) and (repr(value) in error or text in error)


def config_error(
    errors: list[str],
    config_jsonschema: dict[str, t.Any],
    env_prefix: str | None = None,
    config: t.Mapping[str, t.Any] | None = None,
) -> ConfigError:
    """One line for every problem with the settings; a secret's value is never shown.

    ``errors`` are the SDK's messages (``... in config['name']``), which quote the value:
    that of a secret setting, or of another one a secret was pasted into (``config``).
    With ``--config ENV`` (``env_prefix``), a setting read from a variable names it.
    """
    properties = config_jsonschema.get("properties", {})
    secrets = secrets_of(config, config_jsonschema).values()
    problems = []
    for error in errors:
        name = next((name for name in properties if f"config[{name!r}]" in error), None)
        if name is not None and (
            properties[name].get("secret")
            or _quotes_a_secret(error, (config or {}).get(name), secrets)
        ):
            error = (
                f"config[{name!r}] must be {_expected(properties[name])} "
                "(the value is, or holds, a secret: not shown)"
            )
        if name is not None and env_prefix and _variable(env_prefix, name) in os.environ:
            error += f" (read from {_variable(env_prefix, name)})"
        problems.append(error)
    return ConfigError(f"Invalid settings: {'; '.join(problems)}: check the config")


def unreadable_variable(config_jsonschema: dict[str, t.Any], prefix: str) -> ConfigError | None:
    """Once the SDK failed to read the variables of ``--config ENV``: the one at fault.

    The SDK's reader fails naming neither the variable nor the setting; each setting is
    read here alone, by that reader, to name them. Never the value: it may be a secret.
    """
    for name, schema in config_jsonschema.get("properties", {}).items():
        try:
            parse_environment_config({"properties": {name: schema}}, prefix)
        except ValueError:
            return _variable_error(prefix, name, schema)
    return None


def unknown_boolean(config_jsonschema: dict[str, t.Any], prefix: str) -> ConfigError | None:
    """A boolean setting's variable saying neither yes nor no (``ture``): the SDK reads false."""
    for name, schema in config_jsonschema.get("properties", {}).items():
        value = os.environ.get(_variable(prefix, name))
        if value is not None and is_boolean_type(schema) and value.lower() not in TRUTHY + FALSY:
            return _variable_error(prefix, name, schema)
    return None


def _variable(prefix: str, name: str) -> str:
    """The variable ``--config ENV`` reads a setting from, named as the SDK names it."""
    return prefix + name.upper().replace("-", "_")


def _variable_error(prefix: str, name: str, schema: dict[str, t.Any]) -> ConfigError:
    return ConfigError(
        f"The environment variable {_variable(prefix, name)} is not {_expected(schema)}, as "
        f"the setting {name!r} needs: fix or unset it (--config ENV reads it)"
    )


def _expected(schema: dict[str, t.Any]) -> str:
    """What a setting's schema asks for, in words: 'a non-empty string', 'a JSON array'."""
    kinds = schema.get("type", "value")
    kind = next(k for k in ([kinds] if isinstance(kinds, str) else kinds) if k != "null")
    words = {
        "integer": "an integer",
        "boolean": f"a boolean ({'/'.join(TRUTHY)} or {'/'.join(FALSY)})",
        "array": "a JSON array",
        "object": "a JSON object",
    }
    return words.get(kind, f"a {'non-empty ' if schema.get('minLength') else ''}{kind}")
