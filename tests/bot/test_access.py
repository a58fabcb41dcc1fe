"""Only admins and the owner get anything; strangers get their id and nothing else."""

from __future__ import annotations

from bot.access import OWNER_CODE_KEY, Access
from bot.app import build_dispatcher
from tests.bot.conftest import ADMIN, OTHER_ADMIN, STRANGER, Harness


async def test_stranger_gets_one_line_with_their_id_and_nothing_else(harness: Harness) -> None:
    await harness.say("/list", user=STRANGER)
    await harness.say("/schedule +4915123456789 | tomorrow 9:00 | hi", user=STRANGER)
    await harness.say("hello", user=STRANGER)
    messages = harness.telegram.bot_messages(STRANGER)
    assert len(messages) == 3
    for message in messages:
        assert str(STRANGER) in message.text
        assert "TELEGRAM_ADMIN_IDS" in message.text
        assert message.reply_markup is None
    assert await harness.service.schedules.list_schedules() == []


async def test_stranger_pressing_a_button_gets_an_alert_and_nothing_happens(
    harness: Harness,
) -> None:
    await harness.say("/schedule +4915123456789 | tomorrow 9:00 | hi")
    listing = await harness.ask("/list", "Your schedules")
    query = await harness.press(listing, "Delete", user=STRANGER)
    answer = await harness.telegram.answer(query)
    assert answer["show_alert"] and str(STRANGER) in answer["text"]
    assert len(await harness.service.schedules.list_schedules()) == 1
    assert harness.telegram.bot_messages(STRANGER) == []


async def test_button_naming_another_owners_schedule_is_refused(harness: Harness) -> None:
    await harness.say("/schedule +4915123456789 | tomorrow 9:00 | theirs", user=OTHER_ADMIN)
    [theirs] = await harness.service.schedules.list_schedules()
    await harness.say("/schedule +4915123456789 | tomorrow 9:00 | mine")
    listing = await harness.ask("/list", "Your schedules")
    assert f"#{theirs.id}" not in listing.text
    forged = f"s:delok:{theirs.id}"
    query = await harness.press_data(listing, forged)
    answer = await harness.telegram.answer(query)
    assert answer["show_alert"] and f"no schedule #{theirs.id}" in answer["text"]
    assert await harness.service.schedules.get_schedule(theirs.owner_id, theirs.id)
    reply = await harness.ask(f"/runnow {theirs.id}", "no schedule")
    assert "/list" in reply.text
    assert await harness.store.list_runs() == []


async def test_forged_or_unknown_callback_data_is_answered_not_ignored(harness: Harness) -> None:
    message = await harness.ask("/help", "wasched")
    query = await harness.press_data(message, "nonsense:1")
    assert "no longer works" in (await harness.telegram.answer(query))["text"]


async def test_first_run_code_makes_the_first_sender_owner_once(harness: Harness) -> None:
    store = harness.store
    access = Access(set(), harness.service.users)
    code = await access.prepare()
    assert code is not None and await store.get_value(OWNER_CODE_KEY) == code
    harness.access = access
    harness.dispatcher = build_dispatcher(access)

    # Without the code, or with a wrong one: where the code is, not "ask its owner".
    for attempt, says in (("/start", "no owner yet"), ("/start 123", "not the one-time code")):
        refused = await harness.ask(attempt, says, user=STRANGER)
        assert "deploy/start.sh" in refused.text and "journalctl -u wasched" in refused.text
        assert "docker compose" in refused.text and str(STRANGER) in refused.text
        assert "ask its owner" not in refused.text
    welcomed = await harness.ask(f"/start {code}", "You are now the owner", user=STRANGER)
    # The next steps: the time zone (asked right here, with buttons), then /link.
    assert "/link" in welcomed.text and "Your time zone is Europe/Berlin" in welcomed.text
    assert welcomed.button("America/New_York")
    user = await store.get_user(STRANGER)
    assert user is not None and user.is_owner
    assert await store.get_value(OWNER_CODE_KEY) is None
    listing = await harness.ask("/list", "no schedules", user=STRANGER)
    assert listing.text

    # The code is used up: nobody else can claim it, and no new code is made on restart.
    other = await harness.ask(f"/start {code}", "private", user=ADMIN)
    assert str(ADMIN) in other.text
    assert await Access(set(), harness.service.users).prepare() is None


async def test_typed_commands_naming_another_owners_schedule_are_no_such_schedule(
    harness: Harness,
) -> None:
    await harness.say("/schedule +4915123456789 | tomorrow 9:00 | theirs", user=OTHER_ADMIN)
    [theirs] = await harness.service.schedules.list_schedules()
    await harness.service.runs.run_now(OTHER_ADMIN, theirs.id)
    for command in ("pause", "resume", "delete", "preview", "edit", "logs", "export"):
        reply = await harness.ask(f"/{command} {theirs.id}", f"no schedule #{theirs.id}")
        assert "/list" in reply.text, command
    assert await harness.service.schedules.list_schedules() == [theirs]
    assert len(await harness.store.list_runs()) == 1  # theirs, run by them
