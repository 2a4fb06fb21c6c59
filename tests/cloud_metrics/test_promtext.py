"""The strict parser refuses what Prometheus would refuse (and what we promise not to emit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.access.harness import running_hub
from tests.cloud_metrics import promtext

GOOD = """# HELP a_total A counter.
# TYPE a_total counter
a_total{x="1",y="q\\"\\\\\\n"} 3
a_total{x="2"} 1e3
# HELP b A gauge.
# TYPE b gauge
b NaN
b{s="i"} +Inf
"""


def test_a_valid_exposition_parses_with_escapes_undone() -> None:
    families = promtext.parse(GOOD)
    assert families["a_total"].value(x="1", y='q"\\\n') == 3
    assert families["a_total"].value(x="2") == 1000
    assert families["b"].value(s="i") == float("inf")


@pytest.mark.parametrize(
    "text",
    [
        GOOD.rstrip("\n"),  # no final newline
        "a 1\n",  # no TYPE
        "# TYPE a gauge\na 1\n",  # no HELP
        '# HELP a x\n# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n',  # repeated series
        "# HELP a x\n# TYPE a gauge\na{x=1} 1\n",  # unquoted label value
        '# HELP a x\n# TYPE a gauge\na{__x="1"} 1\n',  # reserved label name
        "# HELP a x\n# TYPE a gauge\na one\n",  # not a number
        "# HELP a x\n# TYPE a gauge\n# HELP b y\n# TYPE b gauge\nb 1\na 1\n",  # interleaved
        "# HELP a x\n# TYPE a gaugé\na 1\n",  # unknown type
        "# HELP a x\n# TYPE a counter\na -1\n",  # counter without _total, negative
        "# HELP a_total x\n# TYPE a_total counter\na_total -1\n",  # negative counter
        '# HELP h x\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\n'
        "h_sum 1\nh_count 1\n",  # not cumulative
        '# HELP h x\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',  # no +Inf
    ],
)
def test_invalid_expositions_are_refused(text: str) -> None:
    with pytest.raises(promtext.ExpositionError):
        promtext.parse(text)


async def test_the_hub_exposition_is_strictly_valid(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.unlock("front-door", code="12345678")
        families = promtext.parse(await (await hub.client.get("/metrics")).text())
        breaker = families["lockhub_lock_breaker_state"]
        assert breaker.value(lock_id="front-door", state="closed") == 1
        assert breaker.value(lock_id="front-door", state="open") == 0
        assert sorted(breaker.values().values()) == [0, 0, 0, 0, 1, 1]  # one-hot per lock
        assert families["lockhub_unlock_attempts_total"].value(result="denied") == 1
