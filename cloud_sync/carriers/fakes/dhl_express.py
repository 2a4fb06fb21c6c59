"""DHL Express as karrio's plugin calls it: the XML Services endpoint ``/XMLShippingServlet``.

karrio 2026.1's ``dhl_express`` plugin speaks DHL's XML-PI (not the MyDHL REST API): one URL,
the request's root element says what is asked. Answered here: ``DCTRequest/GetQuote`` (rates),
``ShipmentRequest`` (a waybill number and a base64 PDF label) and ``KnownTrackingRequest``.
Anything wrong (unknown site id, no such route) gets DHL's ``Condition`` error shape.
"""

from __future__ import annotations

import base64
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape

from aiohttp import web

from .base import FakeServer
from .labels import pdf_label

NS = 'xmlns:res="http://www.dhl.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
# (global product code, local product code, name, price, days): DHL's domestic and worldwide
# express products as GetQuote lists them.
PRODUCTS = (
    ("N", "N", "EXPRESS DOMESTIC", "12.50", 1),
    ("P", "P", "EXPRESS WORLDWIDE", "48.90", 3),
)
FUEL_SHARE = "0.18"


@dataclass
class Shipment:
    """A waybill the fake issued and the scans it went through."""

    awb: str
    consignee: str
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (code, text, signatory)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(root: ET.Element, name: str) -> str:
    found = next((node for node in root.iter() if _local(node.tag) == name), None)
    return (found.text or "").strip() if found is not None else ""


def _header(site_id: str) -> str:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return (
        f"<Response><ServiceHeader><MessageTime>{now}</MessageTime>"
        "<MessageReference>1234567890123456789012345678901</MessageReference>"
        f"<SiteID>{escape(site_id)}</SiteID></ServiceHeader></Response>"
    )


def condition_error(code: str, message: str, root: str = "ErrorResponse") -> str:
    """DHL's error answer: a Status with Conditions."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><res:{root} {NS}>{_header("")}'
        "<Status><ActionStatus>Error</ActionStatus><Condition>"
        f"<ConditionCode>{escape(code)}</ConditionCode>"
        f"<ConditionData>{escape(message)}</ConditionData>"
        f"</Condition></Status></res:{root}>"
    )


class FakeDhlExpress(FakeServer):
    """The fake DHL Express XML Services (``url`` is the karrio ``server_url``)."""

    def __init__(self, site_id: str, password: str) -> None:
        super().__init__()
        self.site_id, self.password = site_id, password
        self.shipments: dict[str, Shipment] = {}
        self.app.add_routes([web.post("/XMLShippingServlet", self._servlet)])

    async def _servlet(self, request: web.Request) -> web.Response:
        try:
            root = ET.fromstring(await request.read())  # noqa: S314 - our own client's XML
        except ET.ParseError:
            return self._xml(condition_error("111", "Error in parsing request XML"))
        if (_text(root, "SiteID"), _text(root, "Password")) != (self.site_id, self.password):
            return self._xml(condition_error("100", "Invalid SiteID or Password"))
        kind = _local(root.tag)
        if kind == "DCTRequest":
            return self._xml(self._quote(root))
        if kind == "ShipmentRequest":
            return self._xml(self._ship(root))
        if kind == "KnownTrackingRequest":
            return self._xml(self._track(root))
        return self._xml(condition_error("111", f"Unsupported request {kind}"))

    @staticmethod
    def _xml(body: str) -> web.Response:
        return web.Response(body=body.encode(), content_type="application/xml")

    def _quote(self, root: ET.Element) -> str:
        postcodes = [_text(node, "Postalcode") for node in root.iter() if _local(node.tag) == "To"]
        if "00000" in postcodes:
            return condition_error("420505", "The destination location is invalid.", "DCTResponse")
        domestic = [
            _text(node, "CountryCode") for node in root.iter() if _local(node.tag) in {"From", "To"}
        ]
        today = datetime.now(UTC).date()
        products = [p for p in PRODUCTS if (p[0] == "N") == (len(set(domestic)) == 1)]
        quotes = "".join(self._product(product, today) for product in products)
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><res:DCTResponse {NS}><GetQuoteResponse>'
            f"{_header(self.site_id)}<BkgDetails>{quotes}</BkgDetails>"
            "<Srvs/></GetQuoteResponse></res:DCTResponse>"
        )

    @staticmethod
    def _product(product: tuple[str, str, str, str, int], today: object) -> str:
        global_code, local_code, name, price, days = product
        base = float(price)
        fuel = round(base * float(FUEL_SHARE), 2)
        delivery = datetime.now(UTC).replace(hour=12, minute=0, second=0) + timedelta(days=days)
        return (
            f"<QtdShp><GlobalProductCode>{global_code}</GlobalProductCode>"
            f"<LocalProductCode>{local_code}</LocalProductCode>"
            f"<ProductShortName>{name}</ProductShortName>"
            f"<LocalProductName>{name}</LocalProductName>"
            f"<NetworkTypeCode>TD</NetworkTypeCode><POfferedCustAgreement>N</POfferedCustAgreement>"
            f"<TransInd>Y</TransInd><PickupDate>{today}</PickupDate>"
            f"<PickupCutoffTime>PT18H00M</PickupCutoffTime><BookingTime>PT16H00M</BookingTime>"
            f"<CurrencyCode>EUR</CurrencyCode><ExchangeRate>1.0</ExchangeRate>"
            f"<WeightCharge>{base:.2f}</WeightCharge><WeightChargeTax>0.00</WeightChargeTax>"
            f"<TotalTransitDays>{days}</TotalTransitDays><PickupPostalLocAddDays>0</PickupPostalLocAddDays>"
            f"<DeliveryPostalLocAddDays>0</DeliveryPostalLocAddDays>"
            f"<DeliveryDate><DeliveryType>QDDC</DeliveryType>"
            f"<DlvyDateTime>{delivery:%Y-%m-%d %H:%M:%S}</DlvyDateTime>"
            f"<DeliveryDateTimeOffset>+01:00</DeliveryDateTimeOffset></DeliveryDate>"
            f"<DeliveryTime>PT12H00M</DeliveryTime><DimensionalWeight>1.2</DimensionalWeight>"
            f"<WeightUnit>KG</WeightUnit><PickupDayOfWeekNum>3</PickupDayOfWeekNum>"
            f"<DestinationDayOfWeekNum>4</DestinationDayOfWeekNum>"
            f"<QtdShpExChrg><SpecialServiceType>FF</SpecialServiceType>"
            f"<LocalServiceTypeName>FUEL SURCHARGE</LocalServiceTypeName>"
            f"<ChargeValue>{fuel:.2f}</ChargeValue></QtdShpExChrg>"
            f"<PricingDate>{today}</PricingDate>"
            f"<ShippingCharge>{base + fuel:.2f}</ShippingCharge>"
            f"<TotalTaxAmount>0.00</TotalTaxAmount></QtdShp>"
        )

    def _ship(self, root: ET.Element) -> str:
        consignee = _text(root, "CompanyName") or _text(root, "PersonName")
        if not consignee:
            return condition_error(
                "PLV001", "Consignee company name is missing", "ShipmentValidateErrorResponse"
            )
        awb = "".join(str(secrets.randbelow(10)) for _ in range(10))
        self.shipments[awb] = Shipment(awb, consignee, [("PU", "Shipment picked up", "")])
        label = base64.b64encode(pdf_label("DHL Express", awb)).decode()
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><res:ShipmentResponse {NS}>'
            f"{_header(self.site_id)}<RegionCode>EU</RegionCode><Note><ActionNote>Success</ActionNote></Note>"
            f"<AirwayBillNumber>{awb}</AirwayBillNumber><BillingCode>DSA</BillingCode>"
            f"<CurrencyCode>EUR</CurrencyCode><ShippingCharge>14.75</ShippingCharge>"
            f"<Pieces><Piece><PieceNumber>1</PieceNumber><DataIdentifier>J</DataIdentifier>"
            f"<LicensePlate>JD01{awb}0001</LicensePlate></Piece></Pieces>"
            f"<LabelImage><OutputFormat>PDF</OutputFormat><OutputImage>{label}</OutputImage>"
            f"</LabelImage></res:ShipmentResponse>"
        )

    def deliver(self, awb: str, signatory: str) -> None:
        """Scan the waybill as delivered, signed for by ``signatory``."""
        self.shipments[awb].events.append(("OK", "Delivered - Signed for by", signatory))

    def _track(self, root: ET.Element) -> str:
        awb = _text(root, "AWBNumber")
        shipment = self.shipments.get(awb)
        if shipment is None:
            info = "<Status><ActionStatus>No Shipments Found</ActionStatus></Status>"
        else:
            events = "".join(_event(code, text, who) for code, text, who in shipment.events)
            info = (
                "<Status><ActionStatus>success</ActionStatus></Status><ShipmentInfo>"
                "<OriginServiceArea><ServiceAreaCode>BER</ServiceAreaCode>"
                "<Description>BERLIN-DE</Description></OriginServiceArea>"
                "<DestinationServiceArea><ServiceAreaCode>BER</ServiceAreaCode>"
                "<Description>BERLIN-DE</Description></DestinationServiceArea>"
                f"<ShipperName>LOCKHUB</ShipperName><ConsigneeName>{escape(shipment.consignee)}"
                f"</ConsigneeName><ShipmentDate>{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}</ShipmentDate>"
                "<Pieces>1</Pieces><Weight>1.2</Weight><WeightUnit>K</WeightUnit>"
                f"<GlobalProductCode>N</GlobalProductCode><ShipmentDesc>parcel</ShipmentDesc>"
                f"<DlvyNotificationFlag>N</DlvyNotificationFlag>{events}</ShipmentInfo>"
            )
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><req:TrackingResponse xmlns:req="http://www.dhl.com">'
            f"{_header(self.site_id)}<AWBInfo><AWBNumber>{escape(awb)}</AWBNumber>{info}</AWBInfo>"
            "<LanguageCode>en</LanguageCode></req:TrackingResponse>"
        )


def _event(code: str, text: str, signatory: str) -> str:
    now = datetime.now(UTC)
    return (
        f"<ShipmentEvent><Date>{now:%Y-%m-%d}</Date><Time>{now:%H:%M:%S}</Time>"
        f"<ServiceEvent><EventCode>{code}</EventCode><Description>{escape(text)}</Description>"
        f"</ServiceEvent><Signatory>{escape(signatory)}</Signatory>"
        "<ServiceArea><ServiceAreaCode>BER</ServiceAreaCode><Description>BERLIN-DE</Description>"
        "</ServiceArea></ShipmentEvent>"
    )
