"""The status page in headless Chromium against a real hub: rendered data and a screenshot.

The screenshot is kept as a test artifact in ``$LOCKHUB_ARTIFACTS_DIR`` (default: the test's
temporary directory).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.statuspage.browser import DomTable, chromium, read_png, run_chromium
from tests.statuspage.site import SECRETS, busy_site

WIDTH, HEIGHT = 1280, 900


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where the screenshot and the rendered DOM are kept."""
    configured = os.environ.get("LOCKHUB_ARTIFACTS_DIR")
    path = Path(configured) if configured else tmp_path / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.timeout(30)
async def test_page_renders_the_hub_in_chromium(tmp_path: Path, artifacts: Path) -> None:
    binary = chromium()
    async with busy_site(tmp_path) as site:
        depth = await site.harness.hub.store.outbox_depth()
        url = site.url + "/"
        screenshot = artifacts / "statuspage.png"
        screenshot.unlink(missing_ok=True)
        dom, _ = await asyncio.gather(
            run_chromium(binary, tmp_path / "profile-dom", "--dump-dom", url),
            run_chromium(
                binary,
                tmp_path / "profile-shot",
                f"--screenshot={screenshot}",
                f"--window-size={WIDTH},{HEIGHT}",
                url,
            ),
        )
    html = dom.decode()
    (artifacts / "statuspage.html").write_text(html)

    # The DOM after the script ran: every lock's state and battery, the outbox, the link.
    table = DomTable()
    table.feed(html)
    assert table.rows["front-door"]["state"] == "Unlocked"
    assert table.rows["parcel-room"]["state"] == "Locked"
    assert table.rows["parcel-room"]["battery"] == "14 % (low)"
    assert table.rows["front-door"]["breaker"] == "Reachable"
    assert table.by_id["outbox-depth"] == str(depth)
    assert table.by_id["sync-state"] == "Offline"
    assert table.by_id["clock-state"] == "Synced"
    assert table.by_id["live"].startswith("Updated")
    events = table.by_id["events"]
    assert "Battery report" in events
    assert "Unlocked" in events
    for secret in SECRETS:
        assert secret not in html

    png = read_png(screenshot.read_bytes())
    assert (png.width, png.height) == (WIDTH, HEIGHT)
    # Not blank: a one-colour 1280x900 screen filters to zeros and compresses to a few KiB.
    assert png.compressed_size > 20_000
    nonzero = len(png.filtered) - png.filtered.count(0)
    assert nonzero > len(png.filtered) // 100
    assert len(set(png.filtered)) > 64
