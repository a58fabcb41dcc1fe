"""One router per feature, listed once in the order they see updates; catch-alls last."""

from __future__ import annotations

from aiogram import Router

from bot.routers import (
    acks,
    asks,
    contacts,
    errors,
    fallback,
    groups,
    link,
    logs,
    schedule,
    schedules,
    spikes,
    start,
    stats,
    status,
    templates,
    timezone,
)


def all_routers() -> list[Router]:
    # Commands first; the wizard's free-text steps after every command, the fallback last.
    return [
        errors.router,
        start.router,
        schedules.router,
        logs.router,
        stats.router,
        acks.router,
        spikes.router,
        asks.router,
        contacts.router,
        groups.router,
        templates.router,
        status.router,
        link.router,
        timezone.router,
        schedule.router,
        fallback.router,
    ]
