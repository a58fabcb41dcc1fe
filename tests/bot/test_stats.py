"""/stats through the real dispatcher and the fake Telegram server over HTTP: a PNG photo whose
plotted data are the store's counts, the figures as its caption, words for an empty period and
for days it cannot show, and the bot answering others while a chart renders."""

from __future__ import annotations

import asyncio
import io
import threading
from collections import Counter
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from bot import ui
from bot.chart import Chart, render_chart
from core.domain.models import DeliveryFilter, DeliveryStatus
from core.services import MAX_ID, DayFigures, Figures
from core.services.stats import MAX_STATS_DAYS
from tests.bot.conftest import ADMIN, OTHER_ADMIN, START, Harness
from tests.fakes.telegram import parse_html
from tests.store.factories import add_delivery_at, add_run, add_schedule

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BERLIN = ZoneInfo("Europe/Berlin")  # the harness's default zone


class Recorder:
    """The real renderer, keeping each chart it drew."""

    def __init__(self) -> None:
        self.charts: list[Chart] = []

    def __call__(self, figures: Figures) -> Chart:
        chart = render_chart(figures)
        self.charts.append(chart)
        return chart


async def seed(harness: Harness) -> tuple[int, int]:
    """Messages of ADMIN's two schedules over the last days (and one of another owner's);
    returns the two schedule ids."""
    store = harness.store
    first = await add_schedule(store, owner_id=ADMIN)
    second = await add_schedule(store, owner_id=ADMIN)
    run_1, run_2 = await add_run(store, first), await add_run(store, second)
    sent, read, failed = DeliveryStatus.sent, DeliveryStatus.read, DeliveryStatus.failed
    today = START - timedelta(hours=1)
    await add_delivery_at(
        store, run_1, "1", read, sent_at=today, delivered_at=today + timedelta(seconds=20),
        read_at=today + timedelta(minutes=5),
    )  # fmt: skip
    await add_delivery_at(store, run_1, "2", sent, sent_at=today)
    three_days_ago = START - timedelta(days=3)
    await add_delivery_at(
        store, run_2, "3", DeliveryStatus.delivered, sent_at=three_days_ago,
        delivered_at=three_days_ago + timedelta(seconds=40),
    )  # fmt: skip
    await add_delivery_at(store, run_2, "4", failed, failed_at=three_days_ago)
    await add_delivery_at(store, run_2, "5", failed, failed_at=START - timedelta(days=10))
    await add_delivery_at(store, run_1, "6", failed, failed_at=START - timedelta(days=40))
    theirs = await add_run(store, await add_schedule(store, owner_id=OTHER_ADMIN))
    await add_delivery_at(store, theirs, "7", sent, sent_at=today)
    return first.id, second.id


async def counted_from_the_store(harness: Harness, days: int) -> dict[str, list[int]]:
    """ADMIN's messages per Berlin day as /logs reads them (whole deliveries), for each of
    the last `days` days: what the chart must show."""
    deliveries = await harness.store.list_deliveries(DeliveryFilter(owner_id=ADMIN))
    today = START.astimezone(BERLIN).date()
    wanted = [today - timedelta(days=n) for n in reversed(range(days))]
    counts: dict[str, Counter[date]] = {k: Counter() for k in ("sent", "delivered", "read")}
    counts["failed"] = Counter()

    def day(at: datetime) -> date:
        return at.astimezone(BERLIN).date()

    for d in deliveries:
        if d.sent_at is not None:
            counts["sent"][day(d.sent_at)] += 1
            counts["delivered"][day(d.sent_at)] += d.delivered_at is not None
            counts["read"][day(d.sent_at)] += d.read_at is not None
        if d.status is DeliveryStatus.failed and d.failed_at is not None:
            counts["failed"][day(d.failed_at)] += 1
    return {key: [counted[w] for w in wanted] for key, counted in counts.items()}


async def ask_stats(harness: Harness, text: str, render: Recorder, user: int = ADMIN) -> None:
    await harness.telegram.send(user, text)
    await harness.feed(render_stats_chart=render)


async def test_stats_sends_a_png_chart_of_the_stores_counts_with_the_figures(
    harness: Harness,
) -> None:
    first, second = await seed(harness)
    render = Recorder()
    await ask_stats(harness, "/stats", render)

    assert len(harness.telegram.calls_of("sendPhoto")) == 1
    photo = harness.last()
    assert photo.kind == "photo" and photo.file is not None
    png = photo.file.data
    assert png.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(png)) as image:
        assert (image.format, image.size) == ("PNG", (1000, 640))
    # What Telegram got is the chart whose lines were read back.
    (chart,) = render.charts
    assert chart.png == png and (chart.width, chart.height) == (1000, 640)
    expected = await counted_from_the_store(harness, 30)
    for key in ("sent", "delivered", "read", "failed"):
        assert chart.plotted[key] == tuple(float(n) for n in expected[key]), key
    # The seed, in words: today 2 sent (1 read), 3 days ago 1 sent and delivered, 1 failed.
    assert expected["sent"][-1] == 2 and expected["read"][-1] == 1
    assert expected["sent"][-4] == 1 and expected["failed"][-4] == 1
    assert chart.plotted["read_rate"][-1] == 50.0 and chart.plotted["read_rate"][-4] == 0.0
    assert sum(1 for rate in chart.plotted["read_rate"] if rate == rate) == 2  # NaN elsewhere
    caption = photo.text
    assert "Last 30 days (Europe/Berlin)" in caption
    assert "Sent 3, delivered 2, read 1, failed 2." in caption
    assert "Read rate: 33%." in caption
    assert "Median time to delivered: 30 s; to read: 5 min." in caption
    assert f"Most failures: #{second} (2)." in caption
    assert f"#{first}" not in caption  # its one failure was 40 days ago


async def test_stats_with_a_number_of_days_shows_that_many(harness: Harness) -> None:
    await seed(harness)
    render = Recorder()
    await ask_stats(harness, "/stats 7", render)
    (chart,) = render.charts
    expected = await counted_from_the_store(harness, 7)
    assert chart.plotted["sent"] == tuple(float(n) for n in expected["sent"])
    assert len(chart.plotted["failed"]) == 7
    assert "Last 7 days" in harness.last().text
    await ask_stats(harness, "/stats 365", render)
    assert len(render.charts[-1].plotted["sent"]) == 365
    assert len(harness.telegram.calls_of("sendPhoto")) == 2


@pytest.mark.parametrize("typed", ["/stats abc", "/stats 0", "/stats 400", "/stats 7 days"])
async def test_stats_with_days_it_cannot_show_says_what_to_type(
    harness: Harness, typed: str
) -> None:
    await seed(harness)
    render = Recorder()
    since = harness.telegram.cursor()
    await ask_stats(harness, typed, render)
    answer = await harness.telegram.reply(ADMIN, "/stats 7", since=since)
    assert "from 1 to 365" in answer.text
    assert render.charts == [] and harness.telegram.calls_of("sendPhoto") == []


async def test_stats_of_an_empty_period_answers_in_words(harness: Harness) -> None:
    # ADMIN's only message failed 40 days ago; another owner's went out today.
    store = harness.store
    mine = await add_run(store, await add_schedule(store, owner_id=ADMIN))
    await add_delivery_at(
        store, mine, "old", DeliveryStatus.failed, failed_at=START - timedelta(days=40)
    )
    theirs = await add_run(store, await add_schedule(store, owner_id=OTHER_ADMIN))
    await add_delivery_at(store, theirs, "today", DeliveryStatus.sent, sent_at=START)
    render = Recorder()
    since = harness.telegram.cursor()
    await ask_stats(harness, "/stats", render)
    words = await harness.telegram.reply(ADMIN, "Nothing was sent", since=since)
    assert "last 30 days" in words.text and words.kind == "text"
    assert render.charts == [] and harness.telegram.calls_of("sendPhoto") == []
    # 40 days back there is something to draw.
    await ask_stats(harness, "/stats 41", render)
    assert len(render.charts) == 1 and render.charts[0].plotted["failed"][0] == 1.0
    assert len(harness.telegram.calls_of("sendPhoto")) == 1


async def test_the_bot_answers_another_command_while_a_chart_renders(harness: Harness) -> None:
    await seed(harness)
    started, release = threading.Event(), threading.Event()
    rendered: list[Chart] = []

    def held(figures: Figures) -> Chart:
        started.set()
        # Bounded, so a render that held the event loop ends the test instead of hanging it.
        release.wait(timeout=20)
        chart = render_chart(figures)
        rendered.append(chart)
        return chart

    await harness.telegram.send(ADMIN, "/stats")
    (update,) = harness.telegram.take_updates()
    wired = {"notifier": harness.notifier, "access": harness.access}
    charting = asyncio.create_task(
        harness.dispatcher.feed_raw_update(
            harness.bot,
            update,
            **harness.service.by_name(),
            **wired,
            render_stats_chart=held,
        )
    )
    assert await asyncio.to_thread(started.wait, 10), "the render never started"
    helped = await harness.ask("/help", "/stats [days]", user=OTHER_ADMIN)
    # Answered while the chart was still held: no photo yet, the render still waiting.
    assert helped.kind == "text"
    assert not release.is_set() and rendered == []
    assert harness.telegram.calls_of("sendPhoto") == []
    release.set()
    await charting
    assert len(rendered) == 1
    assert len(harness.telegram.calls_of("sendPhoto")) == 1
    photo = harness.last().file
    assert photo is not None and photo.data == rendered[0].png


def test_the_caption_fits_telegrams_limit_whatever_the_numbers() -> None:
    huge = 10**12
    days = tuple(
        DayFigures(date(2026, 1, 1) + timedelta(days=n), huge, huge, huge, huge)
        for n in range(MAX_STATS_DAYS)
    )
    figures = Figures(
        timezone="America/Argentina/ComodRivadavia",
        days=days,
        median_to_delivered_s=10.0**9,
        median_to_read_s=10.0**9,
        top_failing=tuple((MAX_ID - n, huge) for n in range(3)),
    )
    caption = ui.stats_caption(figures)
    assert ui.telegram_length(parse_html(caption)) <= ui.TELEGRAM_CAPTION_LIMIT
    assert f"#{MAX_ID} ({huge})" in caption


async def test_stats_1_is_today(harness: Harness) -> None:
    await seed(harness)
    render = Recorder()
    await ask_stats(harness, "/stats 1", render)
    (chart,) = render.charts
    assert chart.plotted["sent"] == (2.0,) and chart.plotted["read_rate"] == (50.0,)
    assert harness.last().text.startswith("Today (Europe/Berlin)\nSent 2, delivered 1, read 1")
