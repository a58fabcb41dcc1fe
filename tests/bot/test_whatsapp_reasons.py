"""Why WhatsApp does not work, wherever the owner reads: the alert, /status, /link and
`wasched check`, with the bot over core as `wasched run` builds it and the fake sidecar over
real HTTP (its session.status events reach core's HTTP server, /status and /link ask /health)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiogram import Bot, Dispatcher

from bot.access import Access
from bot.app import build_dispatcher
from bot.notifier import TelegramNotifier
from core.app import Core, open_core
from core.commands.check import CheckResult, check_sidecar
from core.config import REPO_ROOT, Settings, load_settings
from core.domain.clock import FakeClock
from core.domain.session import FAILURE_CODES, SessionFailure, explain
from tests.bot.conftest import ADMIN, OTHER_ADMIN, START, feed_updates
from tests.fakes.sidecar import FAILURE_MESSAGES, FakeSidecar, free_port
from tests.fakes.telegram import ChatMessage, FakeTelegram

API_KEY = "reasons-test-key-0123456789"


@dataclass
class Wired:
    """The bot as a person meets it, over a running core and the fake sidecar."""

    telegram: FakeTelegram
    dispatcher: Dispatcher
    bot: Bot
    core: Core
    notifier: TelegramNotifier
    access: Access
    sidecar: FakeSidecar
    settings: Settings

    async def ask(self, text: str, contains: str = "", user: int = ADMIN) -> ChatMessage:
        since = self.telegram.cursor()
        await self.telegram.send(user, text)
        wired = {"notifier": self.notifier, "access": self.access}
        await feed_updates(self.telegram, self.dispatcher, self.bot, self.core.services, **wired)
        return await self.telegram.reply(user, contains, since=since, within=5)

    async def move(self, state: str, **failure: Any) -> None:
        """The sidecar's session moves (posting session.status to core); wait until every
        message it causes is shown."""
        await self.sidecar.set_state(state, **failure)
        await self.settled()

    async def settled(self) -> None:
        await self.core.http.notified()
        await self.notifier.outbox.drained()

    async def check(self) -> CheckResult:
        """The whatsapp row of `wasched check`."""
        async with httpx.AsyncClient(headers={"X-Api-Key": API_KEY}) as client:
            return await check_sidecar(self.settings, client)

    def alerts(self, chat: int = ADMIN) -> list[str]:
        return [m.text for m in self.telegram.bot_messages(chat) if m.text.startswith("⚠️")]

    def recoveries(self, chat: int = ADMIN) -> list[str]:
        return [m.text for m in self.telegram.bot_messages(chat) if "working again" in m.text]

    def first_links(self, chat: int = ADMIN) -> list[str]:
        return [m.text for m in self.telegram.bot_messages(chat) if "WhatsApp is linked" in m.text]

    def photos(self, chat: int = ADMIN) -> list[ChatMessage]:
        return [m for m in self.telegram.bot_messages(chat) if m.kind == "photo"]


@pytest.fixture
async def wired(telegram: FakeTelegram, app_bot: Bot, tmp_path: Any) -> AsyncIterator[Wired]:
    sidecar = FakeSidecar(api_key=API_KEY)
    await sidecar.start()
    settings = load_settings(
        DATABASE_URL=f"sqlite:///{tmp_path / 'wasched.db'}",
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=free_port(),
        WHATSAPP_URL=sidecar.url,
        WHATSAPP_API_KEY=API_KEY,
        DEFAULT_TIMEZONE="Europe/Berlin",
    )
    notifier = TelegramNotifier(app_bot, admin_ids={ADMIN, OTHER_ADMIN}, pace_s=0)
    try:
        async with (
            notifier.outbox.running(drain_s=2),
            open_core(settings, notifier=notifier, clock=FakeClock(START)) as core,
        ):
            sidecar.events_url = f"{core.url}/whatsapp/events"
            access = Access({ADMIN, OTHER_ADMIN}, core.services.users)
            await access.prepare()
            notifier.set_audience(access.members)
            yield Wired(
                telegram,
                build_dispatcher(access),
                app_bot,
                core,
                notifier,
                access,
                sidecar,
                settings,
            )
    finally:
        await sidecar.close()


@dataclass(frozen=True)
class Case:
    state: str
    code: str | None
    reason: str  # in the alert, /status and `wasched check`
    fix: str  # likewise
    link: str  # in the answer to /link
    # Linking is what helps: the alert and the fix say "/link".
    link_helps: bool = False
    # /link promises a QR code (it will come).
    qr_follows: bool = False
    # `wasched check` passes (the setup is fit; WhatsApp waits for the owner).
    check_ok: bool = False


CASES = [
    Case(
        "FAILED",
        "whatsapp_web_unreachable",
        "cannot reach WhatsApp Web (no internet connection or no DNS)",
        "Check the server's internet connection and DNS",
        "No QR code can come now",
    ),
    Case(
        "FAILED",
        "chromium_missing",
        "finds no Chromium browser",
        "set CHROMIUM_PATH in .env",
        "No QR code can come now",
    ),
    Case(
        "FAILED",
        "chromium_failed",
        "would not start or crashed",
        "See data/whatsapp.log for the browser's error",
        "No QR code can come now",
    ),
    Case(
        "FAILED",
        "profile_locked",
        "Another browser holds WhatsApp's profile",
        "Stop the other WhatsApp service or Chromium that uses WHATSAPP_DATA_DIR",
        "No QR code can come now",
    ),
    Case(
        "STARTING",
        "never_ready",
        "logged in but never finished loading",
        "restarts it by itself, no new link is needed",
        "It restarts by itself and needs no new link",
    ),
    Case(
        "STARTING",
        "page_broken",
        "The WhatsApp Web page broke",
        "restarts it by itself, no new link is needed",
        "It restarts by itself and needs no new link",
    ),
    Case(
        "STARTING",
        "logged_out",
        "WhatsApp logged this device out",
        "Send /link to the bot and scan the new QR code",
        "I will send it here as soon as it has one",
        link_helps=True,
        qr_follows=True,
        check_ok=True,
    ),
    Case(
        "FAILED",
        "auth_failure",
        "WhatsApp refused the saved link",
        "Send /link to the bot and scan the new QR code",
        "I will send it here as soon as it has one",
        link_helps=True,
        qr_follows=True,
        check_ok=True,
    ),
    Case(
        "FAILED",
        None,
        "The WhatsApp service failed without saying why",
        "restart the WhatsApp service: bash deploy/stop.sh && bash deploy/start.sh",
        "No QR code can come now",
    ),
    Case(
        "STOPPED",
        None,
        "The WhatsApp service stopped",
        "Start it again: bash deploy/start.sh",
        "No QR code can come now",
    ),
]


def test_every_failure_code_of_the_sidecar_has_words_and_a_case() -> None:
    engine_js = (REPO_ROOT / "whatsapp-service/src/engines/engine.js").read_text()
    listed = engine_js.split("FAILURE_CODES = Object.freeze([", 1)[1].split("]);", 1)[0]
    assert re.findall(r"^\s*'([a-z_]+)',", listed, re.MULTILINE) == list(FAILURE_CODES)
    assert {c.code for c in CASES if c.code} == set(FAILURE_CODES)
    unknown = explain("FAILED", SessionFailure("no_such_code", ""))
    for code in FAILURE_CODES:
        words = explain("FAILED", SessionFailure(code, ""))
        assert words.code == code and words.reason != unknown.reason.replace("no_such_code", code)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.code or c.state)
async def test_each_reason_reaches_the_alert_status_link_and_check(
    wired: Wired, case: Case
) -> None:
    await wired.move("WORKING")
    failure = {} if case.code is None else {"failure": case.code}
    await wired.move(case.state, **failure)

    for chat in (ADMIN, OTHER_ADMIN):
        [alert] = wired.alerts(chat)
        why, fix, *_ = alert.splitlines()
        assert case.reason in why and fix.startswith("Fix: ") and case.fix in fix
        assert ("/link" in alert) is case.link_helps

    status = await wired.ask("/status", "wasched status")
    lines = status.text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("WhatsApp: "))
    assert lines[at] == f"WhatsApp: {case.state}"
    assert lines[at + 1].startswith("Why: ") and case.reason in lines[at + 1]
    assert lines[at + 2].startswith("Fix: ") and case.fix in lines[at + 2]
    if case.code is not None:  # the sidecar's own detail comes with the reason
        assert wired.sidecar.failure is not None
        assert wired.sidecar.failure["message"] in lines[at + 1]

    link = await wired.ask("/link")
    assert case.link in link.text and link.kind == "text"
    promises = "send it here" in link.text or "QR code here" in link.text
    assert promises is case.qr_follows
    if not case.link_helps:
        assert "/link" not in link.text

    row = await wired.check()
    assert row.ok is case.check_ok
    assert case.reason in row.detail
    if case.check_ok:
        assert case.fix in row.detail
    else:
        assert case.fix in row.fix

    # Nothing more was said on its own: one alert, no QR code.
    await wired.settled()
    assert len(wired.alerts()) == 1 and wired.photos() == []


async def test_network_down_never_advises_a_restart_or_a_new_link(wired: Wired) -> None:
    await wired.move("FAILED", failure="whatsapp_web_unreachable")
    row = await wired.check()
    status = await wired.ask("/status", "wasched status")
    link = await wired.ask("/link")
    for text in (wired.alerts()[0], status.text, link.text, row.fix):
        assert "deploy/stop.sh" not in text and "Send /link" not in text
    assert "no restart and no new link needed" in row.fix


async def test_an_unreachable_sidecar_is_named_in_status_link_and_check(wired: Wired) -> None:
    await wired.sidecar.go_down()

    status = await wired.ask("/status", "wasched status")
    assert "WhatsApp: unreachable" in status.text
    assert "Why: wasched cannot reach the WhatsApp service." in status.text
    assert "Fix: Start it (bash deploy/start.sh)" in status.text

    link = await wired.ask("/link")
    assert "No QR code can come now. wasched cannot reach the WhatsApp service." in link.text
    assert "send it here" not in link.text

    row = await wired.check()
    assert not row.ok and "cannot reach the sidecar" in row.detail
    assert row.fix.startswith("Start it (bash deploy/start.sh)")


async def test_not_linked_sends_the_qr_code_and_says_send_link(wired: Wired) -> None:
    await wired.move("WORKING")
    await wired.move("SCAN_QR_CODE")
    [alert] = wired.alerts()
    assert "not linked" in alert and "Send /link" in alert

    photo = await wired.ask("/link", "Scan this")
    assert photo.kind == "photo"
    status = await wired.ask("/status", "wasched status")
    assert "Why: WhatsApp is not linked" in status.text and "Fix: Send /link" in status.text
    row = await wired.check()
    assert row.ok and "Send /link" in row.detail


async def test_link_while_starting_promises_the_qr_code_and_it_comes(wired: Wired) -> None:
    await wired.move("STARTING")
    link = await wired.ask("/link", "starting")
    assert "I will send the QR code here" in link.text
    assert wired.alerts() == []  # starting is not an outage

    await wired.move("SCAN_QR_CODE")
    [photo] = wired.photos()
    assert "Scan this" in photo.text
    # Not being linked is worth the alert; linking ends it with one message.
    [alert] = wired.alerts()
    assert "not linked" in alert
    await wired.move("WORKING")
    # The first link is no recovery: nothing was held, nothing works "again".
    [linked] = wired.first_links()
    assert "Scheduled messages go out from now on" in linked and "+15550001111" in linked
    assert wired.recoveries() == [] and photo.deleted


async def test_a_promise_made_while_starting_is_corrected_when_it_cannot_come(
    wired: Wired,
) -> None:
    await wired.move("STARTING")
    await wired.ask("/link", "I will send the QR code here")

    # The browser then finds no network: the chat hears why, once.
    await wired.move("FAILED", failure="whatsapp_web_unreachable")
    [alert] = wired.alerts()
    assert "cannot reach WhatsApp Web" in alert and "/link" not in alert
    assert wired.photos() == []

    # The network is back but the account is not linked: now linking helps, and the QR
    # code promised comes after all.
    await wired.move("SCAN_QR_CODE")
    assert len(wired.alerts()) == 2
    assert "now for another reason: WhatsApp is not linked" in wired.alerts()[1]
    assert "Send /link" in wired.alerts()[1]
    assert len(wired.photos()) == 1

    await wired.move("WORKING")
    assert len(wired.first_links()) == 1 and wired.recoveries() == []
    # Once linked, a later outage ends with the recovery message.
    await wired.move("SCAN_QR_CODE")
    await wired.move("WORKING")
    assert len(wired.first_links()) == 1 and len(wired.recoveries()) == 1


def outage(code: str, cycles: int) -> Iterator[tuple[str, str]]:
    """The sidecar's retry loop for one reason: STARTING and FAILED again and again, each
    event sometimes delivered twice (its retries)."""
    for cycle in range(cycles):
        yield "STARTING", code
        yield "FAILED", code
        if cycle % 5 == 0:
            yield "FAILED", code


async def test_a_long_outage_alerts_once_per_reason_and_recovers_once(wired: Wired) -> None:
    await wired.move("WORKING")
    events = 0
    for code, cycles in (
        ("whatsapp_web_unreachable", 40),
        ("chromium_failed", 20),
        ("whatsapp_web_unreachable", 20),  # seen in this outage already
    ):
        for state, failure in outage(code, cycles):
            await wired.sidecar.set_state(state, failure=failure)
            events += 1
        # Someone looks meanwhile (/status asks /health): looking adds no alert.
        await wired.ask("/status", f"({FAILURE_MESSAGES[code]})")
    await wired.settled()
    await wired.move("WORKING")

    assert events > 150
    for chat in (ADMIN, OTHER_ADMIN):
        alerts = wired.alerts(chat)
        assert len(alerts) == 2, alerts
        assert "cannot reach WhatsApp Web" in alerts[0]
        assert "now for another reason" in alerts[1] and "would not start" in alerts[1]
        assert len(wired.recoveries(chat)) == 1

    # A new outage is news again.
    await wired.move("FAILED", failure="whatsapp_web_unreachable")
    assert len(wired.alerts()) == 3


async def test_link_with_a_number_while_offline_gives_no_code_but_the_reason(
    wired: Wired,
) -> None:
    await wired.move("FAILED", failure="chromium_missing")
    link = await wired.ask("/link +49 151 99999999")
    assert "pairing code" not in link.text.lower()
    assert "No QR code can come now" in link.text and "CHROMIUM_PATH" in link.text


async def test_after_a_log_out_the_new_qr_code_comes_to_whoever_asked(wired: Wired) -> None:
    await wired.move("WORKING")
    await wired.move("STARTING", failure="logged_out")
    [alert] = wired.alerts()
    assert "logged this device out" in alert and "Send /link" in alert
    await wired.ask("/link", "I will send it here")

    # The sidecar shows the QR code; the reason is the same, so no second alert.
    await wired.move("SCAN_QR_CODE")
    assert len(wired.photos()) == 1 and len(wired.alerts()) == 1
