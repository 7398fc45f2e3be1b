"""Records cut to their schema: what the API adds that the schema does not declare goes."""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    import logging


class Projection:
    """Keeps only the properties a JSON schema declares, all the way down.

    Names each undeclared field once, at INFO: an API may add fields at any time, and that
    is news for whoever maintains the schema, not a problem with the run.
    """

    def __init__(self, schema: dict[str, t.Any], logger: logging.Logger) -> None:
        self._logger = logger
        self._reported: set[str] = set()
        self._news: set[str] = set()  # first seen in the record being projected
        self._project = self._compile(schema, "")

    def __call__(self, record: dict[str, t.Any]) -> dict[str, t.Any]:
        """The record with undeclared fields removed."""
        projected = t.cast("dict[str, t.Any]", self._project(record))
        if self._news:
            self._logger.info(
                "Not syncing fields the schema does not declare: %s", ", ".join(sorted(self._news))
            )
            self._news.clear()
        return projected

    def _compile(self, schema: dict[str, t.Any], path: str) -> t.Callable[[t.Any], t.Any]:
        properties = schema.get("properties")
        if properties is not None and not schema.get("additionalProperties"):
            return self._object(properties, path)
        if "items" in schema:
            project_item = self._compile(schema["items"], path)
            if project_item is _unchanged:
                return _unchanged
            return lambda value: (
                [project_item(item) for item in value] if isinstance(value, list) else value
            )
        return _unchanged

    def _object(self, properties: dict[str, t.Any], path: str) -> t.Callable[[t.Any], t.Any]:
        declared = frozenset(properties)
        compiled = {name: self._compile(sub, f"{path}{name}.") for name, sub in properties.items()}
        nested = {name: each for name, each in compiled.items() if each is not _unchanged}

        def project(value: t.Any) -> t.Any:
            if not isinstance(value, dict):
                return value
            if value.keys() <= declared:
                kept = value  # the common case: nothing to drop, no copy
            else:
                kept = {key: item for key, item in value.items() if key in declared}
                self._report(path, value.keys() - declared)
            for name, project_nested in nested.items():
                if (item := kept.get(name)) is not None:
                    kept[name] = project_nested(item)
            return kept

        return project

    def _report(self, path: str, names: t.Iterable[str]) -> None:
        if new := {f"{path}{name}" for name in names} - self._reported:
            self._reported |= new
            self._news |= new


def _unchanged(value: t.Any) -> t.Any:
    return value
