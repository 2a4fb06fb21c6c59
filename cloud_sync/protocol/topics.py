"""MQTT topics of the wire contract: builders, cloud subscriptions and a strict parser."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from .errors import MalformedError
from .fields import HUB_ID_PATTERN

DEFAULT_PREFIX = "lockhub/v1"
# Brokers allow 65535 bytes; ours stay short so ACL patterns and logs stay readable.
MAX_PREFIX_LENGTH = 128
MAX_PREFIX_LEVELS = 8
MAX_GROUP_LENGTH = 64
_LEVEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HUB_ID = re.compile(HUB_ID_PATTERN.removeprefix("^").removesuffix("$"))
_GROUP = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_GROUP_LENGTH - 1}}}")


class Channel(StrEnum):
    """The per-hub channels; the value is the topic suffix after ``hubs/{hub_id}/``."""

    COMMANDS = "down/commands"
    ACKS = "down/acks"
    RECORDS = "up/records"
    HELLO = "up/hello"
    STATUS = "up/status"


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """How a channel is published: direction, QoS and the retained flag."""

    direction: str
    qos: int
    retained: bool


CHANNELS: dict[Channel, ChannelSpec] = {
    Channel.COMMANDS: ChannelSpec("cloud->hub", 1, retained=False),
    Channel.ACKS: ChannelSpec("cloud->hub", 1, retained=False),
    Channel.RECORDS: ChannelSpec("hub->cloud", 1, retained=False),
    Channel.HELLO: ChannelSpec("hub->cloud", 1, retained=False),
    # Retained so a dashboard that subscribes later still sees online/offline.
    Channel.STATUS: ChannelSpec("hub->cloud", 1, retained=True),
}


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is 1..8 plain levels (no wildcards, no ``$``), else raise."""
    if not isinstance(prefix, str) or not 0 < len(prefix) <= MAX_PREFIX_LENGTH:
        raise MalformedError("topic prefix must be 1..128 characters")
    levels = prefix.split("/")
    if len(levels) > MAX_PREFIX_LEVELS or not all(_LEVEL.fullmatch(lv) for lv in levels):
        raise MalformedError(f"invalid topic prefix {prefix!r}")
    return prefix


def check_hub_id(hub_id: str) -> str:
    """Return ``hub_id`` if it is a valid hub id (one safe topic level), else raise."""
    if not isinstance(hub_id, str) or not _HUB_ID.fullmatch(hub_id):
        raise MalformedError(f"invalid hub_id {hub_id!r}")
    return hub_id


def topic(prefix: str, hub_id: str, channel: Channel) -> str:
    """The topic of ``channel`` for ``hub_id``: ``{prefix}/hubs/{hub_id}/{channel}``."""
    return f"{check_prefix(prefix)}/hubs/{check_hub_id(hub_id)}/{Channel(channel).value}"


def commands_topic(prefix: str, hub_id: str) -> str:
    """``{prefix}/hubs/{hub_id}/down/commands``."""
    return topic(prefix, hub_id, Channel.COMMANDS)


def acks_topic(prefix: str, hub_id: str) -> str:
    """``{prefix}/hubs/{hub_id}/down/acks``."""
    return topic(prefix, hub_id, Channel.ACKS)


def records_topic(prefix: str, hub_id: str) -> str:
    """``{prefix}/hubs/{hub_id}/up/records``."""
    return topic(prefix, hub_id, Channel.RECORDS)


def hello_topic(prefix: str, hub_id: str) -> str:
    """``{prefix}/hubs/{hub_id}/up/hello``."""
    return topic(prefix, hub_id, Channel.HELLO)


def status_topic(prefix: str, hub_id: str) -> str:
    """``{prefix}/hubs/{hub_id}/up/status``."""
    return topic(prefix, hub_id, Channel.STATUS)


def hub_subscriptions(prefix: str, hub_id: str) -> list[str]:
    """The topics a hub subscribes to: its commands and acks."""
    return [commands_topic(prefix, hub_id), acks_topic(prefix, hub_id)]


def cloud_subscription(prefix: str, channel: Channel, group: str | None = None) -> str:
    """``{prefix}/hubs/+/{channel}``, or ``$share/{group}/...`` when workers share the load."""
    filter_ = f"{check_prefix(prefix)}/hubs/+/{Channel(channel).value}"
    if group is None:
        return filter_
    if not isinstance(group, str) or not _GROUP.fullmatch(group):
        raise MalformedError(f"invalid shared subscription group {group!r}")
    return f"$share/{group}/{filter_}"


def cloud_subscriptions(prefix: str, group: str | None = None) -> list[str]:
    """What the cloud subscribes to: every hub's records, hello and status."""
    return [
        cloud_subscription(prefix, channel, group)
        for channel in (Channel.RECORDS, Channel.HELLO, Channel.STATUS)
    ]


def parse_topic(prefix: str, topic_name: str) -> tuple[str, Channel]:
    """Split a received topic into ``(hub_id, channel)``; raise MalformedError otherwise."""
    head = f"{check_prefix(prefix)}/hubs/"
    if not isinstance(topic_name, str) or not topic_name.startswith(head):
        raise MalformedError("topic is not under this prefix")
    hub_id, _, rest = topic_name[len(head) :].partition("/")
    check_hub_id(hub_id)
    try:
        return hub_id, Channel(rest)
    except ValueError as exc:
        raise MalformedError(f"unknown channel {rest!r}") from exc
