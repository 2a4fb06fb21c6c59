"""A reportlab canvas whose bytes depend only on what is drawn on it."""

from __future__ import annotations

from typing import BinaryIO

from reportlab.pdfgen.canvas import Canvas

CREATOR = "lockhub cloud"


def new_canvas(buffer: BinaryIO, size: tuple[float, float], *, title: str) -> Canvas:
    """A canvas in reportlab's invariant mode: fixed creation date and file id, no comments."""
    canvas = Canvas(buffer, pagesize=size, invariant=True, pageCompression=1)
    canvas.setTitle(title)
    canvas.setAuthor(CREATOR)
    canvas.setCreator(CREATOR)
    canvas.setProducer(CREATOR)
    canvas.setSubject(title)
    return canvas
