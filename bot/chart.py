"""The /stats chart: sent, delivered, read and failed per day, and the read rate, as a PNG.

Drawn with matplotlib on a `Figure` of its own and the Agg canvas (no pyplot, no display, no
global state), so a render can run in a worker thread (`render_in_thread`) while the bot goes
on answering. Fonts are the ones matplotlib ships. matplotlib is imported by the first render,
in that thread: it costs seconds and tens of MB, which start-up and the CLI need not pay.
"""

from __future__ import annotations

import asyncio
import io
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from bot import ui
from core.services import Figures

# 1000 x 640 pixels: sharp in Telegram's photo viewer, well within its photo limits.
WIDTH_IN, HEIGHT_IN, DPI = 10.0, 6.4, 100
COLORS = {"sent": "#4c72b0", "delivered": "#55a868", "read": "#8172b2", "failed": "#c44e52"}
RATE_KEY = "read_rate"


@dataclass(frozen=True)
class Chart:
    """A rendered chart and what it shows, read back from the drawn lines (not from the
    figures it was given), so a test can hold the picture against the store."""

    png: bytes
    width: int
    height: int
    # Per series key (`ui.CHART_SERIES`'s and `read_rate`, in percent, NaN on a day nothing
    # was sent), the y value of each day, oldest first.
    plotted: dict[str, tuple[float, ...]]


ChartRenderer = Callable[[Figures], Chart]

# matplotlib does not promise that renders in several threads at once are safe; one at a time
# also bounds the memory many /stats at once would take.
_ONE_RENDER = threading.Lock()


def render_chart(figures: Figures) -> Chart:
    """Draw `figures` (at least one day) and encode the PNG; CPU-bound, call it in a thread."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    days = [day.day for day in figures.days]
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    counts, rates = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    marker = "o" if len(days) <= 62 else None
    for key, label in ui.CHART_SERIES.items():
        values = [getattr(day, key) for day in figures.days]
        (line,) = counts.plot(
            days, values, label=label, color=COLORS[key], marker=marker, markersize=3
        )
        line.set_gid(key)
    counts.set_ylabel(ui.CHART_COUNT_LABEL)
    counts.set_ylim(bottom=0)
    counts.yaxis.get_major_locator().set_params(integer=True)
    counts.grid(alpha=0.3)
    counts.set_title(ui.chart_title(len(days), figures.timezone))
    # Below the plots, where no line can hide under it.
    figure.legend(loc="outside lower center", ncols=len(ui.CHART_SERIES), frameon=False)
    percent = [math.nan if d.read_rate is None else 100 * d.read_rate for d in figures.days]
    (rate,) = rates.plot(days, percent, color=COLORS["read"], marker=marker, markersize=3)
    rate.set_gid(RATE_KEY)
    # Half a day of margin each side: the days asked for, never matplotlib's own span (a
    # single day would otherwise sit in the middle of years).
    margin = timedelta(hours=12)
    rates.set_xlim(
        datetime.combine(days[0], time()) - margin, datetime.combine(days[-1], time()) + margin
    )
    rates.set_ylabel(ui.CHART_RATE_LABEL)
    rates.set_ylim(0, 105)
    rates.grid(alpha=0.3)
    # matplotlib 3.11 leaves these three unannotated.
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    rates.xaxis.set_major_locator(locator)
    rates.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    buffer = io.BytesIO()
    canvas.print_png(buffer)  # type: ignore[no-untyped-call]
    width, height = canvas.get_width_height()
    plotted = {
        str(line.get_gid()): tuple(float(y) for y in line.get_ydata())
        for axes in (counts, rates)
        for line in axes.get_lines()
    }
    return Chart(buffer.getvalue(), int(width), int(height), plotted)


async def render_in_thread(figures: Figures, render: ChartRenderer = render_chart) -> Chart:
    """`render(figures)` in a worker thread, so the event loop (the bot) is not held; renders
    take turns."""

    def one_at_a_time() -> Chart:
        with _ONE_RENDER:
            return render(figures)

    return await asyncio.to_thread(one_at_a_time)
