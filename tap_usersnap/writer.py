"""The Singer message writer: msgspec's speed, and no crash on text UTF-8 cannot hold."""

from __future__ import annotations

import atexit
import io
import logging
import sys
import typing as t

from singer_sdk.contrib.msgspec import MsgSpecWriter, serialize_jsonl

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

from singer_sdk.singerlib import SingerMessageType

if t.TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message

logger = logging.getLogger(__name__)
OUTPUT_BUFFER_BYTES = 1 << 16


def replace_lone_surrogates(value: t.Any) -> t.Any:
    """Replace unpaired UTF-16 surrogates (a JSON escape of half an emoji) with U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {key: replace_lone_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [replace_lone_surrogates(item) for item in value]
    return value


def _flush_if_open(output: io.BufferedWriter) -> None:
    """Flush at exit what is left, unless whoever owns standard output closed it first."""
    if not output.raw.closed:
        output.flush()


class UsersnapMessageWriter(MsgSpecWriter):
    """Writes with msgspec; a message with a lone surrogate is repaired, not fatal.

    RECORD messages are buffered, even under ``PYTHONUNBUFFERED`` (one system call a
    record otherwise); every other message (STATE above all) flushes what precedes it, so
    a target never sees a STATE before its records, and what is left is flushed at exit.
    """

    def __init__(self) -> None:
        super().__init__()
        self._buffered: io.BufferedWriter | None = None

    @override
    def write_message(self, message: Message) -> None:
        output = self._output()
        output.write(self.format_message(message))
        if message.type != SingerMessageType.RECORD:
            output.flush()

    def _output(self) -> t.BinaryIO:
        stdout = sys.stdout.buffer
        if not isinstance(stdout, io.FileIO):
            return stdout  # buffered already, or in memory
        if self._buffered is None or self._buffered.raw is not stdout:
            self._buffered = io.BufferedWriter(stdout, buffer_size=OUTPUT_BUFFER_BYTES)
            atexit.register(_flush_if_open, self._buffered)
        return t.cast("t.BinaryIO", self._buffered)

    @override
    def serialize_message(self, message: Message) -> bytearray:
        try:
            return super().serialize_message(message)
        except UnicodeEncodeError:
            logger.warning("Replaced unpaired UTF-16 surrogates with U+FFFD in a %s", message.type)
            return serialize_jsonl(replace_lone_surrogates(message.to_dict()))
