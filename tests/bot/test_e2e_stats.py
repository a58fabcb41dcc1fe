"""End to end: /stats from the real `wasched run` process after a message went out through
the sidecar's fake engine (which acks it up to read), and /stats with days it cannot show."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.bot.test_e2e import ADMIN, NUMBER, World, needs_node, world  # noqa: F401 (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@needs_node
async def test_e2e_stats_is_a_chart_of_what_went_out(world: World) -> None:  # noqa: F811
    assert "stats" in {c["command"] for c in world.telegram.commands}
    nothing = await world.say("/stats", "Nothing was sent")
    assert nothing.kind == "text"
    since = world.telegram.cursor()
    await world.say(f"/schedule {NUMBER} | in 5 seconds | Hello from stats", "Saved")
    report = await world.telegram.reply(ADMIN, "read", since=since, within=30)
    assert "👀" in report.text  # the run's report says it was read
    photo = await world.say("/stats", "Sent 1, delivered 1, read 1, failed 0.")
    assert photo.kind == "photo" and photo.file is not None
    assert "Read rate: 100%." in photo.text and "Last 30 days (UTC)" in photo.text
    with Image.open(io.BytesIO(photo.file.data)) as image:
        assert (image.format, image.size) == ("PNG", (1000, 640))
    refused = await world.say("/stats abc", "/stats 7")
    assert refused.kind == "text"
    assert len(world.telegram.calls_of("sendPhoto")) == 1
