"""Numbers checked with WhatsApp before they cost the account.

WhatsApp restricts unofficial clients that message numbers without an account (its reach-out
limit, error 463), so every person's number is asked about (`POST /contacts/check`) when a
schedule or contact is saved and again when a run fans out, and the answer is remembered
(`Store.save_number_checks`): a number is asked at most once per `ON_WHATSAPP_KEPT`, one
without WhatsApp once per `NOT_ON_WHATSAPP_KEPT` (people do join later).

A check never blocks: when the sidecar cannot answer (not linked, down, a lookup failed) the
numbers it could not check come back as `unchecked`, and the caller goes on (a save says so;
a run sends, and the sidecar's own lookup before each send still refuses such a number).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from core.adapters.sidecar_contract import MAX_CHECK_NUMBERS
from core.adapters.store import Store
from core.domain.clock import Clock
from core.domain.errors import WhatsAppError
from core.domain.models import CheckedNumber, Recipient, RecipientKind

if TYPE_CHECKING:  # the engine imports this module and stays without an HTTP stack
    from core.adapters.whatsapp import WhatsAppClient

logger = logging.getLogger(__name__)

ON_WHATSAPP_KEPT = timedelta(days=30)
NOT_ON_WHATSAPP_KEPT = timedelta(days=1)
# How long a run's fan-out waits for the sidecar per request before it sends unchecked.
RUN_CHECK_WITHIN_S = 10.0
# Numbers asked per request. The sidecar looks them up one after another, so a request of
# `MAX_CHECK_NUMBERS` new numbers outlasts a run's wait (and a save's, many times over);
# each batch's answers are remembered before the next is asked, so a check cut short by a
# timeout keeps what it learned and the next run or save goes on from there.
CHECK_BATCH = min(10, MAX_CHECK_NUMBERS)


@dataclass(frozen=True)
class NumberVerdict:
    """What is known of some numbers now: the ones without WhatsApp, and the ones nobody
    could check (the sidecar did not answer). The rest have WhatsApp."""

    not_on_whatsapp: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()


def numbers_of(recipients: Sequence[Recipient]) -> list[str]:
    """The people's numbers among `recipients` (groups are not looked up), once each."""
    return list(
        dict.fromkeys(
            r.address
            for r in recipients
            if r.kind is not RecipientKind.group and r.address.startswith("+")
        )
    )


class NumberGuard:
    """Checks numbers with the sidecar, remembering each answer in the store."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        whatsapp: WhatsAppClient | None,
        *,
        within_s: float | None = None,
    ) -> None:
        self._store, self._clock, self._whatsapp = store, clock, whatsapp
        # A bound on each request to the sidecar (None: the client's own timeout).
        self._within_s = within_s

    async def remembered(self, numbers: Sequence[str]) -> dict[str, CheckedNumber]:
        """The answers still fresh enough to go by, by number."""
        now = self._clock.now()
        known = await self._store.number_checks(numbers)
        return {
            number: check
            for number, check in known.items()
            if now - check.checked_at
            < (ON_WHATSAPP_KEPT if check.on_whatsapp else NOT_ON_WHATSAPP_KEPT)
        }

    async def check(self, numbers: Sequence[str]) -> NumberVerdict:
        """Whether each number has WhatsApp: remembered answers first, the sidecar for the
        rest (`CHECK_BATCH` at a time, until a request fails), whose answers are
        remembered as each batch comes back; a number the sidecar left out of its answer (its
        lookup failed) is unchecked."""
        wanted = list(dict.fromkeys(numbers))
        known = await self.remembered(wanted)
        ask = [number for number in wanted if number not in known]
        unchecked: list[str] = []
        whatsapp = self._whatsapp
        for start in range(0, len(ask), CHECK_BATCH):
            batch = ask[start : start + CHECK_BATCH]
            if whatsapp is None:
                unchecked.extend(ask[start:])
                break
            try:
                answers = await whatsapp.check_numbers(batch, within_s=self._within_s)
            except WhatsAppError as exc:
                # No numbers in the log: the count and why are enough to act on.
                logger.info("%d numbers not checked with WhatsApp: %s", len(batch), exc.code)
                unchecked.extend(ask[start:])
                break
            now = self._clock.now()
            checks = [
                CheckedNumber(
                    number=answer.number,
                    on_whatsapp=answer.on_whatsapp,
                    whatsapp_id=answer.whatsapp_id,
                    checked_at=now,
                )
                for answer in answers
                if answer.number in batch
            ]
            await self._store.save_number_checks(checks)
            known.update((check.number, check) for check in checks)
            if any(number not in known for number in batch):
                # A lookup failed and the sidecar answered those before it: the next ones
                # would likely fail too, so the rest waits for the next check.
                logger.info(
                    "%d numbers not checked with WhatsApp: a lookup failed",
                    len(ask) - start - len(checks),
                )
                unchecked.extend(n for n in ask[start:] if n not in known)
                break
        return NumberVerdict(
            not_on_whatsapp=tuple(n for n in wanted if n in known and not known[n].on_whatsapp),
            unchecked=tuple(n for n in wanted if n in unchecked),
        )

    async def unchecked(self, numbers: Sequence[str]) -> list[str]:
        """The numbers with no fresh answer (to be checked before their first send)."""
        known = await self.remembered(numbers)
        return [number for number in dict.fromkeys(numbers) if number not in known]
