"""Builders for labels and manifests, and a decoder that reads barcodes off a rendered PDF."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pypdfium2 as pdfium
import pytest
import zxingcpp

from cloud_sync.carriers.documents import LabelData, ManifestData, ManifestLine, Party

SENDER = Party("Lockhub Depot Nord", "Industriestraße 12, Halle 3", "Hamburg", "20095", "DE",
               "+49 40 123456")  # fmt: skip
RECIPIENT = Party("Zoë Ødegård", "Storgata 1", "Oslo", "0155", "NO", "+47 22 00 00 00")
JOB_URL = "https://cloud.example/v1/tenant-a/carrier-jobs/cj_0001"
TRACKING = "1Z999AA10123456784"


def label(**changes: object) -> LabelData:
    """A valid label; keyword arguments replace fields."""
    fields: dict[str, object] = {
        "tracking_number": TRACKING, "job_url": JOB_URL, "task_id": "task-42",
        "provider_code": "karrio:dhl_express", "service": "EXPRESS WORLDWIDE",
        "weight_g": 1250, "ship_date": date(2026, 11, 25), "sender": SENDER,
        "recipient": RECIPIENT,
    }  # fmt: skip
    fields.update(changes)
    return LabelData(**fields)  # type: ignore[arg-type]


def manifest_line(number: int, **changes: object) -> ManifestLine:
    """A valid manifest line whose tracking number derives from ``number``."""
    fields: dict[str, object] = {
        "task_id": f"task-{number}", "carrier_job_id": f"cj-{number}",
        "tracking_number": f"JD{number:012d}", "service": "EXPRESS", "recipient": RECIPIENT,
        "parcels": 1 + number % 3, "weight_g": 500 + number,
    }  # fmt: skip
    fields.update(changes)
    return ManifestLine(**fields)  # type: ignore[arg-type]


def manifest(count: int, job_id: str | None = None) -> ManifestData:
    """A day's manifest (or a job's, with ``job_id``) of ``count`` lines."""
    return ManifestData(
        provider_code="karrio:dhl_express",
        day=date(2026, 11, 25),
        generated_at=datetime(2026, 11, 25, 17, 30, tzinfo=UTC),
        shipper=SENDER,
        lines=tuple(manifest_line(n) for n in range(1, count + 1)),
        job_id=job_id,
    )


def decode(pdf: bytes, dpi: int = 203) -> dict[str, str]:
    """Barcodes found on the first page rendered at ``dpi``: format name -> text."""
    document = pdfium.PdfDocument(pdf)
    try:
        image = document[0].render(scale=dpi / 72).to_pil()
    finally:
        document.close()
    return {result.format.name: result.text for result in zxingcpp.read_barcodes(image)}


def page_texts(pdf: bytes) -> list[str]:
    """The extracted text of every page."""
    document = pdfium.PdfDocument(pdf)
    try:
        return [page.get_textpage().get_text_range() for page in document]
    finally:
        document.close()


@pytest.fixture
def sample_label() -> LabelData:
    """The plain label of the examples."""
    return label()
