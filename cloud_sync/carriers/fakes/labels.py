"""A small real PDF label for the fake carriers to hand back."""

from __future__ import annotations

import io

from reportlab.lib.units import inch
from reportlab.pdfgen.canvas import Canvas


def pdf_label(carrier: str, tracking_number: str) -> bytes:
    """A 4x6 inch PDF naming the carrier and the tracking number."""
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=(4 * inch, 6 * inch))
    canvas.setFont("Helvetica-Bold", 18)
    canvas.drawString(0.3 * inch, 5.4 * inch, carrier)
    canvas.setFont("Helvetica", 14)
    canvas.drawString(0.3 * inch, 5.0 * inch, tracking_number)
    canvas.showPage()
    canvas.save()
    return out.getvalue()
