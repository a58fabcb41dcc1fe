"""Ask me first, as the owner answers it: each answer to a question before a run is recorded
once (who, when, what) and acted on (`core.delivery.asker`); a second press, a late one or
someone else's does nothing more and gets what happened."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from core.adapters.store import Store
from core.delivery.asker import SNOOZES, act, snoozes
from core.delivery.numbers import NumberGuard
from core.domain import when as when_lang
from core.domain.clock import Clock
from core.domain.errors import InvalidInput, InvalidState, NotFound
from core.domain.models import Ask, AskChoice, NoAnswer, Record, Schedule, ScheduleState
from core.services._shared import stored
from core.services.ports import EngineHooks
from core.services.schedules import Schedules

logger = logging.getLogger(__name__)

# `| ask` at the end of the one-line /schedule form, with how long before (`ask 30 min
# before`; ASK_LEAD_S when not said) and what happens if nobody answers.
_ASK_OPTION = re.compile(
    r"\|\s*ask(?:\s+me)?(?:\s+first)?"
    r"(?:\s+(?P<lead>\d{1,5})\s*(?P<unit>m|mins?|minutes?|h|hours?)\s+before)?"
    r"(?:\s*,\s*(?P<policy>send|skip)\s+if\s+no\s+answer)?\s*$",
    re.IGNORECASE,
)
# The last `|` part of the text starts with "ask": meant as the option.
_ASK_TRIED = re.compile(r"\|\s*ask\b[^|]*$", re.IGNORECASE)
# The lead a schedule may ask with: at least a minute, at most a week.
LEAD_RANGE_S = (60, 7 * 24 * 3600)
ASK_FORMS = "| ask, | ask 30 min before or | ask 2 h before, skip if no answer"

# The choices a person can make (the others are the no-answer policy's).
OWNER_CHOICES = (AskChoice.send_now, AskChoice.at_time, AskChoice.snooze, AskChoice.skip)


class Answer(Record):
    """The ask after a press: `fresh` when this press decided it; otherwise it tells what
    was decided before (or, `ask.choice` None, that the due time passed)."""

    schedule: Schedule
    ask: Ask
    fresh: bool


def split_ask_option(text: str) -> tuple[str, NoAnswer | None, int | None]:
    """`Hi! | ask 30 min before, skip if no answer` -> (`Hi!`, skip, 1800): the one-line
    form's ask option taken off the text, with its lead in seconds (None: ASK_LEAD_S); no
    policy when the text has no option. A lead outside a minute to a week is refused."""
    found = _ASK_OPTION.search(text)
    if found is None:
        if _ASK_TRIED.search(text):
            # `| ask tomorrow`: an option gone wrong, not words to send to everyone.
            raise InvalidInput(f"Not saved: the ask option was not understood. Type {ASK_FORMS}.")
        return text, None, None
    policy = NoAnswer(found["policy"].lower()) if found["policy"] else NoAnswer.send
    lead_s = None
    if found["lead"]:
        lead_s = int(found["lead"]) * (3600 if found["unit"].lower().startswith("h") else 60)
        if not LEAD_RANGE_S[0] <= lead_s <= LEAD_RANGE_S[1]:
            raise InvalidInput(
                "Ask from 1 minute to 7 days (168 h) before a run, e.g. " + ASK_FORMS + "."
            )
    return text[: found.start()].rstrip(), policy, lead_s


def next_ask(current: NoAnswer | None) -> NoAnswer | None:
    """The toggle's next setting: off -> ask (send if no answer) -> ask (skip) -> off."""
    if current is None:
        return NoAnswer.send
    return NoAnswer.skip if current is NoAnswer.send else None


class Asks:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        schedules: Schedules,
        hooks: EngineHooks,
        *,
        lead_s: int,
        numbers: NumberGuard | None = None,
    ) -> None:
        self._store, self.clock, self._schedules = store, clock, schedules
        self._hooks = hooks
        self.lead_s = lead_s
        # Checks the numbers of a run Send now stores, as the engine's runs are checked.
        self._numbers = numbers

    async def answer(
        self, user_id: int, ask_id: int, choice: AskChoice, snooze: str | None = None
    ) -> Answer:
        """Record `choice` (with `snooze`, one of `SNOOZES`) for the ask, once, and do it."""
        if choice not in OWNER_CHOICES:
            raise InvalidInput("Choose Send now, Send at the time, Snooze or Skip this one.")
        ask, schedule = await self.get(user_id, ask_id)
        now = self.clock.now()
        if ask.choice is None:
            # Taken without this question (Skip next on the schedule's card): say so.
            handled = await self._schedules.handled(schedule, ask.occurrence)
            if handled is not None:
                raise InvalidState(f"Nothing to answer: {handled}. /list shows what comes next.")
        if ask.choice is not None or now >= ask.occurrence:
            return Answer(schedule=schedule, ask=ask, fresh=False)
        if schedule.state is not ScheduleState.active or schedule.next_run_at != ask.occurrence:
            due = when_lang.format_local(ask.occurrence, schedule.rule.timezone)
            raise InvalidState(
                f"#{schedule.id} no longer runs {due}: it was paused or edited since. "
                "/list shows what comes next."
            )
        until = None
        if choice is AskChoice.snooze:
            if snooze not in snoozes(schedule, ask.occurrence):
                raise InvalidInput(
                    "That snooze would pass the next run: choose a shorter one, or Skip this one."
                )
            until = ask.occurrence + timedelta(seconds=SNOOZES[snooze])
        chosen = await self._store.choose(ask.id, choice, by=user_id, at=now, snoozed_until=until)
        if chosen is None:  # answered meanwhile (another press, the policy at the due time)
            again = await self._store.get_ask(ask.id)
            return Answer(schedule=schedule, ask=again or ask, fresh=False)
        logger.info("ask %s of schedule %s: %s", chosen.id, schedule.id, choice.value)
        acted = await act(self._store, self.clock, schedule, chosen, self._numbers)
        self._hooks.schedules_changed()
        if acted.ended is not None:
            await self._hooks.schedule_ended(acted.ended)
        if acted.run_id is not None:
            self._hooks.deliveries_queued()
            chosen = chosen.model_copy(update={"run_id": acted.run_id})
        return Answer(schedule=schedule, ask=chosen, fresh=True)

    async def get(self, user_id: int, ask_id: int) -> tuple[Ask, Schedule]:
        """The ask and its schedule, when the schedule is `user_id`'s."""
        ask = await stored(self._store.get_ask, ask_id)
        if ask is None:
            raise NotFound("This question is gone: see /list for your schedules.")
        schedule = await self._store.get_schedule(ask.schedule_id)
        if schedule is None or schedule.owner_id != user_id:
            raise NotFound(
                f"There is no schedule #{ask.schedule_id} of yours: only its owner answers this."
            )
        return ask, schedule

    async def set_ask_first(
        self,
        owner_id: int,
        schedule_id: int,
        *,
        on: bool,
        on_no_answer: NoAnswer = NoAnswer.send,
        lead_s: int | None = None,
    ) -> Schedule:
        """Turn asking before each run on (with what happens without an answer, `lead_s`
        before each run, ASK_LEAD_S when None) or off."""
        await self._schedules.get_schedule(owner_id, schedule_id)
        updated = await self._store.set_ask_first(
            schedule_id,
            ask_first=on,
            ask_lead_s=(lead_s or self.lead_s) if on else None,
            on_no_answer=on_no_answer,
        )
        self._hooks.schedules_changed()
        return updated

    async def toggle(self, owner_id: int, schedule_id: int) -> Schedule:
        """Edit's toggle: the schedule's ask-first setting moves on by `next_ask`."""
        schedule = await self._schedules.get_schedule(owner_id, schedule_id)
        now = schedule.on_no_answer if schedule.ask_first else None
        following = next_ask(now)
        return await self.set_ask_first(
            owner_id,
            schedule_id,
            on=following is not None,
            on_no_answer=following or NoAnswer.send,
        )
