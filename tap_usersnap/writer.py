"""The Singer message writer: msgspec's speed, and no crash on text UTF-8 cannot hold."""

from __future__ import annotations

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


def replace_lone_surrogates(value: t.Any) -> t.Any:
    """Replace unpaired UTF-16 surrogates (a JSON escape of half an emoji) with U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {key: replace_lone_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [replace_lone_surrogates(item) for item in value]
    return value


class UsersnapMessageWriter(MsgSpecWriter):
    """Writes with msgspec; a message with a lone surrogate is repaired, not fatal.

    RECORD messages are not flushed one by one: every other message (STATE above all)
    flushes what precedes it, so a target never sees a STATE before its records.
    """

    @override
    def write_message(self, message: Message) -> None:
        sys.stdout.buffer.write(self.format_message(message))
        if message.type != SingerMessageType.RECORD:
            sys.stdout.flush()

    @override
    def serialize_message(self, message: Message) -> bytearray:
        try:
            return super().serialize_message(message)
        except UnicodeEncodeError:
            logger.warning("Replaced unpaired UTF-16 surrogates with U+FFFD in a %s", message.type)
            return serialize_jsonl(replace_lone_surrogates(message.to_dict()))
