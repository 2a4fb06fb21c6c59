"""Shipping documents: 4x6 labels (PDF, ZPL) and manifests (CSV, PDF) as pure functions.

body, content_type = render_label(LabelData(...), "pdf")
body, content_type = render_manifest(ManifestData(...), "csv")
"""

from __future__ import annotations

from typing import Literal

from cloud_sync.carriers.documents.errors import DocumentError
from cloud_sync.carriers.documents.label import render_label_pdf
from cloud_sync.carriers.documents.manifest import render_manifest_csv, render_manifest_pdf
from cloud_sync.carriers.documents.model import LabelData, ManifestData, ManifestLine, Party
from cloud_sync.carriers.documents.zpl import CONTENT_TYPE as ZPL_CONTENT_TYPE
from cloud_sync.carriers.documents.zpl import render_label_zpl

__all__ = [
    "CSV_CONTENT_TYPE",
    "PDF_CONTENT_TYPE",
    "ZPL_CONTENT_TYPE",
    "DocumentError",
    "LabelData",
    "LabelFormat",
    "ManifestData",
    "ManifestFormat",
    "ManifestLine",
    "Party",
    "render_label",
    "render_manifest",
]

LabelFormat = Literal["pdf", "zpl"]
ManifestFormat = Literal["csv", "pdf"]
PDF_CONTENT_TYPE = "application/pdf"
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"


def render_label(data: LabelData, fmt: str) -> tuple[bytes, str]:
    """The label as ``fmt`` ("pdf" or "zpl") and its Content-Type; DocumentError otherwise."""
    if fmt == "pdf":
        return render_label_pdf(data), PDF_CONTENT_TYPE
    if fmt == "zpl":
        return render_label_zpl(data), ZPL_CONTENT_TYPE
    raise DocumentError("format", "must be 'pdf' or 'zpl'")


def render_manifest(data: ManifestData, fmt: str) -> tuple[bytes, str]:
    """The manifest as ``fmt`` ("csv" or "pdf") and its Content-Type; DocumentError otherwise."""
    if fmt == "csv":
        return render_manifest_csv(data), CSV_CONTENT_TYPE
    if fmt == "pdf":
        return render_manifest_pdf(data), PDF_CONTENT_TYPE
    raise DocumentError("format", "must be 'csv' or 'pdf'")
