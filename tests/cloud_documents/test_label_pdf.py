"""PDF labels: 4x6 inches, barcodes that decode, any script, long text kept on the label."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from hypothesis import given, settings

from cloud_sync.carriers.documents import LabelData, Party, render_label
from cloud_sync.carriers.documents.label import render_label_pdf
from cloud_sync.carriers.documents.symbols import MARGIN_PT
from tests.cloud_documents.conftest import JOB_URL, TRACKING, decode, label, page_texts
from tests.cloud_documents.strategies import labels

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("dpi", [203, 300])
def test_barcode_and_qr_decode_to_tracking_number_and_url(dpi: int) -> None:
    body, content_type = render_label(label(), "pdf")
    assert content_type == "application/pdf"
    assert decode(body, dpi) == {"Code128": TRACKING, "QRCode": JOB_URL}


def test_page_is_four_by_six_inches() -> None:
    document = pdfium.PdfDocument(render_label_pdf(label()))
    try:
        assert len(document) == 1
        assert document[0].get_size() == (288.0, 432.0)
        assert document.get_metadata_dict()["Title"] == f"Label {TRACKING}"
    finally:
        document.close()


def test_same_data_gives_same_bytes_in_another_process() -> None:
    here = render_label_pdf(label())
    assert render_label_pdf(label()) == here
    script = (
        "import sys; from tests.cloud_documents.conftest import label; "
        "from cloud_sync.carriers.documents.label import render_label_pdf; "
        "sys.stdout.buffer.write(render_label_pdf(label()))"
    )
    there = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    ).stdout  # fmt: skip
    assert there == here


def test_unicode_names_render_and_extract() -> None:
    recipient = Party(
        "Zoë Ødegård 张伟 김민준", "Łódź ulica Ŝŝ \U0001d518 \u200b🙂", "Αθήνα", "", "GR"
    )
    body = render_label_pdf(label(recipient=recipient, service="Экспресс"))
    text = page_texts(body)[0]
    for fragment in ("Zoë Ødegård", "张伟", "김민준", "Łódź", "Αθήνα", "Экспресс"):
        assert fragment in text
    assert "?" in text  # the emoji no font has
    assert decode(body) == {"Code128": TRACKING, "QRCode": JOB_URL}


def _char_boxes(pdf: bytes) -> list[tuple[float, float, float, float]]:
    document = pdfium.PdfDocument(pdf)
    try:
        textpage = document[0].get_textpage()
        return [textpage.get_charbox(index) for index in range(textpage.count_chars())]
    finally:
        document.close()


def _assert_inside(pdf: bytes) -> None:
    for left, bottom, right, top in _char_boxes(pdf):
        assert MARGIN_PT - 1 <= left <= right <= 288 - MARGIN_PT + 1
        assert 0 <= bottom <= top <= 432


def test_very_long_addresses_are_wrapped_and_cut() -> None:
    huge = Party("Name " * 40, "Hauptstraße " * 83, "Stadt" * 40, "1" * 40, "DE", "+49" * 13)
    cjk = Party("张" * 200, "北京市朝阳区建国路88号" * 80, "北京市" * 60, "100022", "CN")
    body = render_label_pdf(label(sender=huge, recipient=cjk, service="S" * 200,
                                  task_id="t" * 128))  # fmt: skip
    _assert_inside(body)
    text = page_texts(body)[0]
    assert text.count("Hauptstraße") < 15  # two lines of 83
    assert "\u2026" in text
    assert decode(body) == {"Code128": TRACKING, "QRCode": JOB_URL}


def test_longest_fitting_tracking_number_and_url_decode() -> None:
    tracking = "AB" * 14
    url = "https://cloud.example/v1/" + "x" * 231
    assert decode(render_label_pdf(label(tracking_number=tracking, job_url=url))) == {
        "Code128": tracking,
        "QRCode": url,
    }


@settings(max_examples=25, deadline=None)
@given(labels())
def test_any_valid_label_renders_and_decodes(data: LabelData) -> None:
    body = render_label_pdf(data)
    _assert_inside(body)
    assert decode(body) == {"Code128": data.tracking_number, "QRCode": data.job_url}
