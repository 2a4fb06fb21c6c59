"""The cloud's Prometheus metrics: ingest results, ack latency, hash chains, published messages,
API requests (and carrier breakers once a registry is wired in).

Counters are fed by the parts that see the events (``CloudMetrics.ingested`` by the MQTT
worker, ``request`` by the API middleware); chain gauges are read from the database just
before each scrape, since several workers share one database and no one process sees it all.
The exposition is Prometheus text format 0.0.4, rendered by the hub's small ``Registry``.
"""

from __future__ import annotations

import bisect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.metrics import Registry

from .service import Outgoing
from .store.rows import IngestResult
from .store.schema import hub_chains, records

# From a local broker and SQLite (a few ms) to PostgreSQL under load or a retried write
# (seconds): an ack later than 10 s makes hubs resend, so finer buckets above it buy nothing.
ACK_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_CHANNELS = {"/down/acks": "acks", "/down/commands": "commands"}
Publish = Callable[[list[Outgoing]], None]
Samples = Iterable[tuple[dict[str, str], float]]


@dataclass(frozen=True, slots=True)
class ChainSummary:
    """Where the hubs' verified chains stand, across all workers."""

    hubs: int = 0
    broken: int = 0  # hubs whose chain is broken in the current epoch
    gap_records: int = 0  # stored records waiting for a missing seq before them
    gap_hubs: int = 0  # hubs with such records


ChainReader = Callable[[], Awaitable[ChainSummary]]


async def read_chain_summary(conn: AsyncConnection) -> ChainSummary:
    """Count hubs, broken chains and records stored past a gap (current epochs only)."""
    chains = (
        await conn.execute(
            sa.select(sa.func.count(), sa.func.count(hub_chains.c.broken_seq)).select_from(
                hub_chains
            )
        )
    ).one()
    current = sa.and_(
        records.c.hub_id == hub_chains.c.hub_id, records.c.epoch == hub_chains.c.epoch
    )
    waiting = (
        await conn.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(records.c.hub_id)))
            .select_from(records.join(hub_chains, current))
            .where(records.c.chained == sa.false())
        )
    ).one()
    return ChainSummary(int(chains[0]), int(chains[1]), int(waiting[0]), int(waiting[1]))


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


@dataclass
class Histogram:
    """A cumulative histogram without labels (Prometheus ``histogram`` type)."""

    name: str
    help: str
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)  # the last one is +Inf

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value

    def render(self) -> Iterable[str]:
        """Lines of the exposition format."""
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        running = 0
        for bound, count in zip((*map(_number, self.buckets), "+Inf"), self.counts, strict=True):
            running += count
            yield f'{self.name}_bucket{{le="{bound}"}} {running}'
        yield f"{self.name}_sum {_number(self.total)}"
        yield f"{self.name}_count {running}"


class CloudMetrics:
    """Every series the cloud exports; ``render()`` after ``refresh()`` for a scrape."""

    def __init__(
        self, chains: ChainReader | None = None, connected: Callable[[], bool] | None = None
    ) -> None:
        self.registry = Registry()
        self._chains = chains
        self._summary = ChainSummary()
        counter = self.registry.counter
        self.batches = counter(
            "lockhub_cloud_ingest_batches_total",
            "up/records batches by outcome: ok, problems (some records refused), refused.",
        )
        self.records = counter(
            "lockhub_cloud_ingest_records_total",
            "Records received, by result: stored, duplicate, rejected, conflict.",
        )
        self.chained = counter(
            "lockhub_cloud_records_chained_total", "Records appended to a hub's verified chain."
        )
        self.held = counter(
            "lockhub_cloud_records_held_total",
            "Records stored behind a broken chain and held back until an operator accepts it.",
        )
        self.published = counter(
            "lockhub_cloud_published_messages_total",
            "MQTT messages handed to the broker, by channel (commands, acks).",
        )
        self.requests = counter(
            "lockhub_cloud_http_requests_total", "API requests by route, method and status."
        )
        self.ack_latency = Histogram(
            "lockhub_cloud_ack_latency_seconds",
            "From an up/records batch's arrival to its ack handed to the broker.",
            ACK_LATENCY_BUCKETS,
        )
        self._chain_gauges()
        if connected is not None:
            self.registry.gauge(
                "lockhub_cloud_mqtt_connected",
                "1 while this worker is connected to the broker.",
                lambda: [({}, float(connected()))],
            )

    def _chain_gauges(self) -> None:
        def one(read: Callable[[ChainSummary], int]) -> Callable[[], Samples]:
            return lambda: [({}, float(read(self._summary)))] if self._chains else []

        gauge = self.registry.gauge
        gauge("lockhub_cloud_hubs", "Registered hubs.", one(lambda s: s.hubs))
        gauge("lockhub_cloud_chains_broken", "Hubs whose chain is broken.", one(lambda s: s.broken))
        gauge(
            "lockhub_cloud_chain_gap_records",
            "Stored records waiting for a missing seq before them.",
            one(lambda s: s.gap_records),
        )
        gauge(
            "lockhub_cloud_chain_gap_hubs",
            "Hubs with records waiting for a missing seq.",
            one(lambda s: s.gap_hubs),
        )

    def ingested(self, result: IngestResult, ack_seconds: float) -> None:
        """One batch stored and acked ``ack_seconds`` after it arrived."""
        problems = result.rejected or result.conflicts or result.broken_at is not None
        self.batches.inc(outcome="problems" if problems else "ok")
        for name, count in (
            ("stored", result.stored),
            ("duplicate", result.duplicates),
            ("rejected", len(result.rejected)),
            ("conflict", len(result.conflicts)),
        ):
            if count:
                self.records.inc(count, result=name)
        if result.chained:
            self.chained.inc(result.chained)
        if result.held:
            self.held.inc(result.held)
        self.ack_latency.observe(ack_seconds)

    def refused(self) -> None:
        """One batch refused whole (undecodable, unknown hub)."""
        self.batches.inc(outcome="refused")

    def sent(self, messages: Sequence[Outgoing]) -> None:
        """Messages handed to the broker."""
        for message in messages:
            channel = next(
                (name for end, name in _CHANNELS.items() if message.topic.endswith(end)), "other"
            )
            self.published.inc(channel=channel)

    def counting(self, publish: Publish) -> Publish:
        """``publish`` that counts what it hands on (for the API's command publisher)."""

        def counted(messages: list[Outgoing]) -> None:
            publish(messages)
            self.sent(messages)

        return counted

    def request(self, route: str, method: str, status: int) -> None:
        """One API request answered."""
        self.requests.inc(route=route, method=method, status=str(status))

    async def refresh(self) -> None:
        """Read the chain gauges from the database (before a scrape)."""
        if self._chains is not None:
            self._summary = await self._chains()

    def render(self) -> str:
        """The whole exposition, ending in a newline."""
        lines = self.registry.render().rstrip("\n").split("\n")
        return "\n".join([*lines, *self.ack_latency.render()]) + "\n"
