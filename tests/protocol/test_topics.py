"""Topic shapes (the broker ACLs rely on them) and the strict topic parser."""

from __future__ import annotations

import pytest

from cloud_sync.protocol import (
    DEFAULT_PREFIX,
    Channel,
    MalformedError,
    check_hub_id,
    cloud_subscription,
    cloud_subscriptions,
    hub_subscriptions,
    parse_topic,
    topic,
)
from cloud_sync.protocol.topics import (
    CHANNELS,
    acks_topic,
    commands_topic,
    hello_topic,
    records_topic,
    status_topic,
)


def test_exact_shapes() -> None:
    builders = [commands_topic, acks_topic, records_topic, hello_topic, status_topic]
    got = [build(DEFAULT_PREFIX, "hub-0001") for build in builders]
    assert got == [
        "lockhub/v1/hubs/hub-0001/down/commands",
        "lockhub/v1/hubs/hub-0001/down/acks",
        "lockhub/v1/hubs/hub-0001/up/records",
        "lockhub/v1/hubs/hub-0001/up/hello",
        "lockhub/v1/hubs/hub-0001/up/status",
    ]
    assert hub_subscriptions("site/x", "h") == [
        "site/x/hubs/h/down/commands",
        "site/x/hubs/h/down/acks",
    ]
    assert [spec.retained for spec in CHANNELS.values()] == [False, False, False, False, True]
    assert all(spec.qos == 1 for spec in CHANNELS.values())


def test_cloud_subscriptions() -> None:
    assert cloud_subscription(DEFAULT_PREFIX, Channel.RECORDS) == "lockhub/v1/hubs/+/up/records"
    assert cloud_subscriptions(DEFAULT_PREFIX, "lockhub-cloud") == [
        "$share/lockhub-cloud/lockhub/v1/hubs/+/up/records",
        "$share/lockhub-cloud/lockhub/v1/hubs/+/up/hello",
        "$share/lockhub-cloud/lockhub/v1/hubs/+/up/status",
    ]
    for group in ("", "a/b", "a+", "#", "$x"):
        with pytest.raises(MalformedError):
            cloud_subscription(DEFAULT_PREFIX, Channel.RECORDS, group)


@pytest.mark.parametrize("channel", list(Channel))
def test_parse_inverts_build(channel: Channel) -> None:
    assert parse_topic("a/b", topic("a/b", "hub.1_x-Y", channel)) == ("hub.1_x-Y", channel)


@pytest.mark.parametrize(
    "name",
    [
        "lockhub/v2/hubs/h/up/records",
        "lockhub/v1/hubs/h/up/records/extra",
        "lockhub/v1/hubs/h/up",
        "lockhub/v1/hubs//up/records",
        "lockhub/v1/hubs/+/up/records",
        "lockhub/v1/hubs/h#/up/records",
        "lockhub/v1/hub/h/up/records",
        "lockhub/v1/hubs/" + "h" * 65 + "/up/records",
        "$share/g/lockhub/v1/hubs/h/up/records",
        "",
    ],
)
def test_parse_rejects(name: str) -> None:
    with pytest.raises(MalformedError):
        parse_topic(DEFAULT_PREFIX, name)


@pytest.mark.parametrize(
    "prefix",
    ["", "/lockhub", "lockhub/", "lock//hub", "lock+hub", "#", "$SYS", "a/" * 8 + "b", "x" * 129],
)
def test_bad_prefixes(prefix: str) -> None:
    with pytest.raises(MalformedError):
        topic(prefix, "h", Channel.RECORDS)


@pytest.mark.parametrize("hub_id", ["", "a/b", "a+", "a#", "-a", "h" * 65, "ä", "a b", "a:b"])
def test_bad_hub_ids(hub_id: str) -> None:
    with pytest.raises(MalformedError):
        check_hub_id(hub_id)
    with pytest.raises(MalformedError):
        commands_topic(DEFAULT_PREFIX, hub_id)
