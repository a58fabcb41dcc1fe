"""/stats [days]: a chart of how the owner's messages did, with the figures as its caption."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, Message, User

from bot import ui
from bot.chart import ChartRenderer, render_chart, render_in_thread
from core.services import Stats, stats_days

router = Router(name=__name__)


@router.message(Command("stats"))
async def stats_command(
    message: Message,
    command: CommandObject,
    stats: Stats,
    event_from_user: User,
    render_stats_chart: ChartRenderer = render_chart,
) -> None:
    """`render_stats_chart` is the renderer; tests pass one that waits to hold a render."""
    days = stats_days(command.args)
    figures = await stats.figures(event_from_user.id, days)
    if figures.empty:
        await message.answer(ui.no_stats(days))
        return
    chart = await render_in_thread(figures, render_stats_chart)
    await message.answer_photo(
        BufferedInputFile(chart.png, filename=ui.STATS_FILENAME),
        caption=ui.stats_caption(figures),
    )
