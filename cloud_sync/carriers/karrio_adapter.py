"""Any installed karrio carrier as a Connector (``karrio:<carrier>``), its calls in a thread.

karrio's gateways are synchronous (urllib); each call runs in ``asyncio.to_thread`` on a fresh
gateway sharing one cache (UPS keeps its OAuth token there). We drive karrio's mapper and
proxy directly rather than its fluent API, which turns every exception into a message and so
hides a timeout from a refusal. HTTP statuses karrio does not return are read from its
``HTTP request failed`` log event (``request_id`` names our call), Retry-After from its trace.

The carrier's base URL is a read-only ``server_url`` property on each plugin's Settings
(test or production by ``test_mode``); ``settings_class`` subclasses it to point anywhere, a
local fake server included.
"""

from __future__ import annotations

import asyncio
import urllib.error
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import structlog

from . import karrio_codec as codec
from .connector import (
    CarrierJob,
    CarrierJobRef,
    Connector,
    JobRequest,
    JobStatus,
    Label,
    Manifest,
    Quote,
    QuoteRequest,
)
from .errors import (
    CarrierError,
    CarrierRejectedError,
    CarrierTimeoutError,
    TransientCarrierError,
    UnknownProviderError,
)
from .karrio_call import (
    KarrioCall,
    install_status_sink,
    installed_carriers,
    kerrors,
    klib,
    km,
    open_call,
    providers,
    settings_class,
)
from .registry import PartnerConfig, ProviderContext, register_provider

__all__ = [
    "KarrioConfig",
    "KarrioConnector",
    "installed_carriers",
    "karrio_factory",
    "settings_class",
]

log = structlog.get_logger(__name__)
T = TypeVar("T")
Now = Callable[[], datetime]

# Labels kept in memory per connector until get_label collects them: a booking's label must
# outlive the call that made it, and a few hundred PDFs of ~50 kB stay small.
MAX_KEPT_LABELS = 256


@dataclass(frozen=True)
class KarrioConfig:
    """One karrio carrier account: plugin settings (credentials included) and where it lives."""

    carrier_name: str
    settings: Mapping[str, Any] = field(repr=False)
    server_url: str | None = None
    label_type: str = "PDF"


class KarrioConnector:
    """The ``karrio:<carrier>`` Connector."""

    def __init__(self, config: KarrioConfig, *, now: Now = lambda: datetime.now(UTC)) -> None:
        if config.carrier_name not in providers():
            raise UnknownProviderError(
                f"karrio carrier {config.carrier_name!r} is not installed",
                provider_code=codec.provider_code(config.carrier_name),
            )
        self.config = config
        self.provider_code = codec.provider_code(config.carrier_name)
        self._now = now
        self._cache = klib.Cache()
        self._settings_type = settings_class(config.carrier_name, config.server_url)
        try:
            self._settings_type(**config.settings)
        except TypeError as exc:
            # attrs names the missing or unknown field; never a value.
            raise CarrierError(f"karrio {config.carrier_name} settings: {exc}") from None
        self._labels: dict[str, Label] = {}
        install_status_sink()

    def _call(self) -> AbstractContextManager[KarrioCall]:
        return open_call(
            self.config.carrier_name, self._settings_type(**self.config.settings), self._cache
        )

    async def _run(self, work: Callable[[KarrioCall], tuple[T | None, list[Any]]]) -> T:
        return await asyncio.to_thread(self._exchange, work)

    def _exchange(self, work: Callable[[KarrioCall], tuple[T | None, list[Any]]]) -> T:
        code = self.provider_code
        with self._call() as call:
            try:
                result, messages = work(call)
            except CarrierError:
                raise
            except kerrors.ParsedMessagesError as exc:
                result, messages = None, list(exc.messages)
            except kerrors.ShippingSDKError as exc:
                detail = getattr(exc, "details", None) or ""
                raise CarrierRejectedError(f"{code}: {exc} {detail}", provider_code=code) from exc
            except urllib.error.URLError as exc:
                raise _unreachable(code, exc.reason) from exc
            except (TimeoutError, OSError) as exc:
                raise _unreachable(code, exc) from exc
            except Exception as exc:  # karrio parsers raise anything on odd input: translated here
                status, headers = call.http_failure()
                if status is not None:
                    raise codec.error_for(
                        code, self.config.carrier_name, [], status, headers
                    ) from exc
                raise codec.UnreadableAnswerError(
                    f"{code}: unreadable answer ({type(exc).__name__})", provider_code=code
                ) from exc
            if result:
                return result
            status, headers = call.http_failure()
            error = codec.error_for(code, self.config.carrier_name, messages, status, headers)
        log.warning("karrio.failed", provider=code, kind=error.kind, status=status)
        raise error

    async def quote(self, request: QuoteRequest) -> list[Quote]:
        """Every service the carrier rates for ``request``."""

        def work(call: KarrioCall) -> tuple[list[Any] | None, list[Any]]:
            gateway = call.gateway
            rates, messages = gateway.mapper.parse_rate_response(
                gateway.proxy.get_rates(
                    gateway.mapper.create_rate_request(codec.rate_request(request))
                )
            )
            return rates, messages

        rates = await self._run(work)
        now = self._now()
        return [codec.read_rate(self.provider_code, rate, request.ready_at, now) for rate in rates]

    async def create_job(self, request: JobRequest, *, idempotency_key: str) -> CarrierJob:
        """Book the quoted service; keep the label for ``get_label``.

        karrio's carriers take no idempotency key: the resilience layer's stored key is what
        keeps a retried booking from shipping twice.
        """
        payload = codec.shipment_request(request, self.config.label_type)

        def work(call: KarrioCall) -> tuple[Any, list[Any]]:
            gateway = call.gateway
            return gateway.mapper.parse_shipment_response(  # type: ignore[no-any-return]
                gateway.proxy.create_shipment(gateway.mapper.create_shipment_request(payload))
            )

        booked = codec.read_shipment(self.provider_code, await self._run(work))
        if booked.label is not None:
            self._keep_label(booked.job.carrier_job_id, booked.label)
        log.info(
            "karrio.booked",
            provider=self.provider_code,
            shipment=booked.job.carrier_job_id,
            key=idempotency_key[:8],
        )
        return booked.job

    def _keep_label(self, job_id: str, label: Label) -> None:
        if len(self._labels) >= MAX_KEPT_LABELS:
            self._labels.pop(next(iter(self._labels)))
        self._labels[job_id] = label

    async def get_status(self, job: CarrierJobRef) -> JobStatus:
        """The shipment's tracking status."""
        payload = km.TrackingRequest(tracking_numbers=[job.tracking_number])

        def work(call: KarrioCall) -> tuple[list[Any] | None, list[Any]]:
            gateway = call.gateway
            return gateway.mapper.parse_tracking_response(  # type: ignore[no-any-return]
                gateway.proxy.get_tracking(gateway.mapper.create_tracking_request(payload))
            )

        details = await self._run(work)
        return codec.read_tracking(details[0], self._now())

    async def cancel_job(self, job: CarrierJobRef) -> None:
        """Void the shipment; CarrierRejectedError if the carrier (or its plugin) cannot."""
        payload = km.ShipmentCancelRequest(shipment_identifier=job.carrier_job_id)

        def work(call: KarrioCall) -> tuple[Any, list[Any]]:
            gateway = call.gateway
            if "cancel_shipment" not in gateway.proxy_methods:
                raise CarrierRejectedError(
                    f"{self.provider_code} cannot cancel shipments through karrio",
                    provider_code=self.provider_code,
                )
            return gateway.mapper.parse_cancel_shipment_response(  # type: ignore[no-any-return]
                gateway.proxy.cancel_shipment(
                    gateway.mapper.create_cancel_shipment_request(payload)
                )
            )

        await self._run(work)
        self._labels.pop(job.carrier_job_id, None)
        log.info("karrio.cancelled", provider=self.provider_code, shipment=job.carrier_job_id)

    async def get_label(self, job: CarrierJobRef) -> Label | None:
        """The label the carrier returned at booking (while kept), else None."""
        return self._labels.get(job.carrier_job_id)

    async def get_manifest(self, day: date) -> Manifest | None:
        """None: end-of-day manifests through karrio are not wired (yet)."""
        del day
        return None


def _unreachable(code: str, reason: object) -> TransientCarrierError:
    if isinstance(reason, TimeoutError):
        return CarrierTimeoutError(f"{code} did not answer in time", provider_code=code)
    return TransientCarrierError(f"{code} unreachable: {type(reason).__name__}", provider_code=code)


def karrio_factory(partner: PartnerConfig, context: ProviderContext) -> Connector:
    """The registry's factory for ``karrio:<carrier>``: credentials are the plugin's settings
    (``site_id``/``password``, ``client_id``/``client_secret``...); settings may add
    ``account_number``, ``account_country_code``, ``test_mode``, ``server_url``, ``label_type``."""
    carrier = partner.provider_code.removeprefix(codec.PREFIX)
    extra = dict(partner.settings)
    server_url = extra.pop("server_url", None)
    label_type = str(extra.pop("label_type", "PDF"))
    if server_url is not None and not isinstance(server_url, str):
        raise CarrierError("karrio setting server_url must be a string")
    config = KarrioConfig(
        carrier_name=carrier,
        settings={**extra, **partner.credentials},
        server_url=server_url,
        label_type=label_type,
    )
    return KarrioConnector(config, now=context.now)


register_provider(f"{codec.PREFIX}*", karrio_factory)
