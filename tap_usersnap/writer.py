"""The Singer message writer: msgspec's speed, and no crash on text UTF-8 cannot hold."""

from __future__ import annotations

import atexit
import io
import logging
import os
import signal
import sys
import typing as t

from singer_sdk.contrib.msgspec import MsgSpecWriter, serialize_jsonl

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

from singer_sdk.singerlib import SingerMessageType

from tap_usersnap.errors import Interrupted

if t.TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message

logger = logging.getLogger(__name__)
OUTPUT_BUFFER_BYTES = 1 << 20


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
        self._writing = False
        self._pending_signal: int | None = None
        self._stopping = False

    @override
    def write_message(self, message: Message) -> None:
        """Write one whole message: a signal arriving meanwhile waits until it is out."""
        self._writing = True
        try:
            output = self._output()
            output.write(self.format_message(message))
            if message.type != SingerMessageType.RECORD:
                output.flush()
        except BrokenPipeError:
            self._reader_gone()
        finally:
            self._writing = False
        if self._pending_signal is not None:
            self.interrupt(self._pending_signal)

    def interrupt(self, signum: int) -> None:
        """Raise :class:`Interrupted` now, or after the message being written; once only.

        A signal handler calls this: a buffered writer is not reentrant, and a message cut
        in half, followed by a STATE, would corrupt the stream.
        """
        if self._stopping:
            return
        if self._writing:
            self._pending_signal = signum
            return
        self._stopping = True
        raise Interrupted(signum)

    def run_ended(self) -> None:
        """The run is over (its last STATE out, or its failure on its way): signals are moot."""
        self._stopping = True

    def _reader_gone(self) -> t.NoReturn:
        """Whoever read standard output stopped (``| head``): exit quietly, non-zero."""
        logger.error("Standard output was closed by its reader: stopping")
        # What is still buffered can go nowhere; without this, Python's exit would try.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        raise SystemExit(128 + signal.SIGPIPE)

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
