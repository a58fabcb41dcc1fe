"""The services the bot calls, one per feature area, built together by `Services`.

The bot imports these (and the domain), never the store or the delivery machinery. A method
that acts on one person's schedule or run takes the acting user's id and answers `NotFound`
for someone else's, so ownership is checked here and nowhere else.

- `schedules`: draft, create, edit, pause, resume, delete, preview, list; recipients; the
  time zones schedules are read in (`Schedules`, `Draft`, `Drafted`,
  `Preview`)
- `runs`: run now, a run and its deliveries, retry, Check again / Send again (`Runs`)
- `logs`: the latest deliveries and the CSV export (`Logs`)
- `contacts`, `templates`: the address book and message templates
- `whatsapp`: link (QR, pairing code), logout, groups, importing contacts, `/status`
- `users`: a person's time zone, whether they were asked for it, the owner and their code
- `memory`: what the bot keeps across restarts (which message shows which run)
- `stats`: how an owner's messages did per day, for /stats (`Stats`, `Figures`)

Also public here, so that the bot needs nothing beyond this package and `core.domain`: the
records the engine hands the bot (`Pacing`, `Recheck`, `StoreHealth` and its `StoreState`),
the rule for a message not on the phone yet (`unacked`) and the bot's own Telegram error
counter (`count_telegram_error`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.adapters.counters import count_telegram_error
from core.adapters.health import StoreHealth, StoreState
from core.adapters.store import Store
from core.adapters.whatsapp import WhatsAppClient
from core.delivery.ack_watch import Recheck, unacked
from core.delivery.asker import Question
from core.delivery.numbers import NumberGuard
from core.delivery.sender import Caps, Pacing
from core.delivery.spikes import Spike, is_spike_held
from core.delivery.states import RETRYABLE
from core.delivery.warmup import WarmUpDay
from core.domain.clock import Clock
from core.services._shared import MAX_ID, is_id
from core.services.asks import Answer, Asks, next_ask, split_ask_option
from core.services.contacts import Contacts
from core.services.logs import MAX_LOG_LIMIT, Logs
from core.services.memory import Memory
from core.services.ports import (
    EngineHooks,
    NoEngine,
    SchedulerInfo,
    UnackedWatch,
)
from core.services.runs import Runs
from core.services.schedules import (
    PREVIEW_COUNT,
    Draft,
    Drafted,
    FireTime,
    Preview,
    Resumed,
    Schedules,
)
from core.services.stats import DayFigures, Figures, Stats, stats_days
from core.services.templates import Templates
from core.services.users import OWNER_CODE_KEY, TIMEZONE_ASKED_KEY, Users
from core.services.whatsapp import Group, ImportResult, LinkQr, Status, WhatsApp

__all__ = [
    "MAX_ID",
    "MAX_LOG_LIMIT",
    "OWNER_CODE_KEY",
    "PREVIEW_COUNT",
    "RETRYABLE",
    "TIMEZONE_ASKED_KEY",
    "Answer",
    "Caps",
    "Contacts",
    "DayFigures",
    "Draft",
    "Drafted",
    "Figures",
    "FireTime",
    "Group",
    "ImportResult",
    "LinkQr",
    "Logs",
    "Memory",
    "Pacing",
    "Preview",
    "Question",
    "Recheck",
    "Resumed",
    "Runs",
    "Schedules",
    "Services",
    "Spike",
    "Stats",
    "Status",
    "StoreHealth",
    "StoreState",
    "Templates",
    "Users",
    "WarmUpDay",
    "WhatsApp",
    "count_telegram_error",
    "is_id",
    "is_spike_held",
    "next_ask",
    "split_ask_option",
    "stats_days",
    "unacked",
]


class Services:
    """Every service, built once over one store and clock (in `core.app.open_core`)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        default_timezone: str,
        hooks: EngineHooks | None = None,
        whatsapp: WhatsAppClient | None = None,
        scheduler: SchedulerInfo | None = None,
        unacked: UnackedWatch | None = None,
        pacing: Callable[[], Pacing | None] | None = None,
        ask_lead_s: int = 900,
        misfire_grace_s: float = 3600,
    ) -> None:
        hooks = hooks or NoEngine()
        self.clock = clock
        self.users = Users(store, default_timezone=default_timezone)
        groups = whatsapp.groups if whatsapp is not None else None
        # People's numbers are checked with WhatsApp when saved and as a run fans out.
        numbers = NumberGuard(store, clock, whatsapp) if whatsapp is not None else None
        self.schedules = Schedules(
            store, clock, self.users, hooks, groups, numbers, misfire_grace_s=misfire_grace_s
        )
        self.runs = Runs(store, self.schedules, hooks, unacked, numbers)
        self.logs = Logs(store, self.schedules)
        self.contacts = Contacts(store, numbers)
        self.templates = Templates(store)
        self.whatsapp = WhatsApp(store, whatsapp, scheduler, numbers)
        self.memory = Memory(store)
        # When the sender may send next (`Sender.pacing`): cards say when sends wait for a cap.
        self.runs.pacing = pacing
        self.stats = Stats(store, clock, self.users)
        self.asks = Asks(store, clock, self.schedules, hooks, lead_s=ask_lead_s, numbers=numbers)

    def by_name(self) -> dict[str, Any]:
        """Each service under its name, for the bot's handlers to ask for (aiogram's
        dependency injection), and all of them as `services`."""
        return {
            "services": self,
            "schedules": self.schedules,
            "runs": self.runs,
            "logs": self.logs,
            "contacts": self.contacts,
            "templates": self.templates,
            "whatsapp": self.whatsapp,
            "users": self.users,
            "stats": self.stats,
            "asks": self.asks,
        }
