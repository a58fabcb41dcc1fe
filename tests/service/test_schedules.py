"""Scheduling: users' zones, create / draft / edit / pause / resume / delete / preview."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.adapters.store import Store
from core.domain import when
from core.domain.clock import FakeClock
from core.domain.errors import (
    InvalidInput,
    InvalidRecipient,
    InvalidState,
    InvalidTemplate,
    InvalidTimezone,
    InvalidWhen,
    MessageTooLong,
    NotFound,
)
from core.domain.models import (
    WHATSAPP_TEXT_LIMIT,
    Media,
    RecipientKind,
    RuleKind,
    ScheduleState,
)
from core.services import Services

from .conftest import OWNER, START, RecordingHooks

# START is Saturday 28 Nov 2026 11:00 in Berlin; "tomorrow 9:00" is Sunday 08:00 UTC.
TOMORROW_9_BERLIN = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
PHOTO = Media(mimetype="image/png", filename="cat.png", data_base64="iVBORw0KGgo=")


async def assert_nothing_stored(store: Store, hooks: RecordingHooks) -> None:
    assert await store.list_schedules() == []
    assert hooks.schedules_changes == 0


# --- users -----------------------------------------------------------------------------------


async def test_a_new_user_has_the_default_zone(service: Services) -> None:
    assert await service.users.timezone_of(OWNER) == "Europe/Berlin"


async def test_set_timezone_stores_the_canonical_name(service: Services) -> None:
    assert await service.users.set_timezone(OWNER, " america/new_york ") == "America/New_York"
    assert await service.users.timezone_of(OWNER) == "America/New_York"


async def test_unknown_timezone_is_refused_and_not_stored(service: Services, store: Store) -> None:
    with pytest.raises(InvalidTimezone, match="Europe/Berlin"):
        await service.users.set_timezone(OWNER, "Mars/Olympus")
    assert await store.get_user(OWNER) is None


async def test_moving_schedules_keeps_their_clock_times_and_tells_the_engine(
    service: Services, store: Store, hooks: RecordingHooks
) -> None:
    every = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="every 2 hours", text="hi"
    )
    cron = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="every weekday at 8:30", text="hi"
    )
    done = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="in 1 hour", text="hi"
    )
    await store.update_schedule(done.id, state=ScheduleState.done)
    assert [
        s.id for s in await service.schedules.schedules_in_other_zones(OWNER, "Asia/Tokyo")
    ] == [
        every.id,
        cron.id,
    ]
    changes = hooks.schedules_changes
    moved, kept = await service.schedules.move_schedules(OWNER, "asia/tokyo")
    assert [s.id for s in moved] == [every.id, cron.id] and kept == []
    assert hooks.schedules_changes == changes + 1
    tokyo, berlin = ZoneInfo("Asia/Tokyo"), ZoneInfo("Europe/Berlin")
    assert every.rule.start is not None and moved[0].rule.start is not None
    before = every.rule.start.astimezone(berlin)
    after = moved[0].rule.start.astimezone(tokyo)
    assert (after.hour, after.minute) == (before.hour, before.minute)
    assert moved[1].next_run_at is not None
    local = moved[1].next_run_at.astimezone(tokyo)
    assert (local.hour, local.minute, local.weekday()) == (8, 30, 0)  # Monday 30 Nov
    assert (
        await service.schedules.get_schedule(done.owner_id, done.id)
    ).rule.timezone == "Europe/Berlin"
    assert await service.schedules.schedules_in_other_zones(OWNER, "Asia/Tokyo") == []
    with pytest.raises(InvalidTimezone):
        await service.schedules.move_schedules(OWNER, "Mars/Olympus")


async def test_a_moved_time_in_the_new_zones_dst_gap_goes_as_the_time_language_says(
    service: Services,
) -> None:
    # 02:30 on 28 March 2027 exists in New York (DST began on the 14th) but not in Berlin,
    # where 02:00 jumps to 03:00: it goes at 03:00, as a typed 02:30 there would.
    await service.users.set_timezone(OWNER, "America/New_York")
    once = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="28.03.2027 02:30", text="hi"
    )
    moved, kept = await service.schedules.move_schedules(OWNER, "Europe/Berlin")
    assert [s.id for s in moved] == [once.id] and kept == []
    berlin = ZoneInfo("Europe/Berlin")
    typed = when.parse_when("28.03.2027 02:30", tz="Europe/Berlin", now=START)
    at = moved[0].rule.at
    assert at is not None and at == typed.at == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)
    assert at.astimezone(berlin).strftime("%H:%M %Z") == "03:00 CEST"


async def test_the_zone_question_is_remembered_once_asked_or_answered(
    service: Services,
) -> None:
    assert not await service.users.timezone_asked(OWNER)
    await service.users.mark_timezone_asked(OWNER)
    assert await service.users.timezone_asked(OWNER)
    await service.users.set_timezone(OWNER + 1, "UTC")
    assert await service.users.timezone_asked(OWNER + 1)


# --- create ----------------------------------------------------------------------------------


async def test_create_parses_when_in_the_owner_zone_and_tells_the_engine(
    service: Services, hooks: RecordingHooks
) -> None:
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="+49 151 2345-6789", when="tomorrow 9:00", text="Hello {weekday}"
    )
    assert schedule.owner_id == OWNER
    assert schedule.state is ScheduleState.active
    assert schedule.rule.kind is RuleKind.once
    assert schedule.rule.timezone == "Europe/Berlin"
    assert schedule.next_run_at == TOMORROW_9_BERLIN
    assert schedule.text == "Hello {weekday}"
    assert [r.address for r in schedule.recipients] == ["+4915123456789"]
    assert hooks.schedules_changes == 1
    assert await service.schedules.get_schedule(schedule.owner_id, schedule.id) == schedule


async def test_create_uses_the_zone_the_owner_set(service: Services) -> None:
    await service.users.set_timezone(OWNER, "America/New_York")
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="tomorrow 9:00", text="Hi"
    )
    assert schedule.rule.timezone == "America/New_York"
    assert schedule.next_run_at == datetime(2026, 11, 29, 14, 0, tzinfo=UTC)


async def test_create_recurring_sets_the_first_fire_time(service: Services) -> None:
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="every day at 9:00", text="Standup"
    )
    assert schedule.rule.kind is RuleKind.cron
    assert schedule.next_run_at == TOMORROW_9_BERLIN


async def test_create_with_a_template_by_name(service: Services) -> None:
    template = await service.templates.add_template("Greeting", "Good morning {first_name}")
    await service.contacts.add_contact("Bob Stone", "+12025550143")
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="bob stone", when="in 10 minutes", template="greeting"
    )
    assert schedule.template_id == template.id
    assert schedule.text is None
    assert schedule.next_run_at == START + timedelta(minutes=10)


async def test_create_with_media_and_no_caption(service: Services) -> None:
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="in 10 minutes", media=PHOTO
    )
    assert schedule.media == PHOTO
    assert not schedule.text


async def test_contact_fields_are_allowed_when_every_recipient_has_them(
    service: Services,
) -> None:
    await service.contacts.add_contact("Anna", "+4915123456789", {"company": "ACME"})
    await service.contacts.add_contact(
        "Bob", "+12025550143", {"company": "Initech", "team": "ops"}
    )
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="anna, bob", when="in 1 hour", text="Hi {name} of {company}"
    )
    assert [r.kind for r in schedule.recipients] == [RecipientKind.contact] * 2


async def test_a_field_some_recipient_lacks_is_refused_with_a_hint(
    service: Services, store: Store, hooks: RecordingHooks
) -> None:
    await service.contacts.add_contact("Anna", "+4915123456789", {"company": "ACME"})
    with pytest.raises(InvalidTemplate, match=r"\{company\}.*every recipient"):
        await service.schedules.create_schedule(
            OWNER, recipients="Anna, +12025550143", when="in 1 hour", text="{company}"
        )
    await assert_nothing_stored(store, hooks)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"text": "Hi {nmae}"}, InvalidTemplate, r"\{nmae\}.*\{first_name\}"),
        ({"text": "Hi", "template": "x"}, InvalidInput, "not both"),
        ({}, InvalidInput, "empty"),
        ({"text": "   "}, InvalidInput, "empty"),
        ({"text": "x" * (WHATSAPP_TEXT_LIMIT + 1)}, MessageTooLong, "characters"),
        ({"text": "Hi", "template": None, "when": "yesterday at noon-ish"}, InvalidWhen, "try"),
        ({"text": "Hi", "when": "2020-01-01 10:00"}, InvalidWhen, "has passed"),
        ({"text": "Hi", "recipients": "Nobody"}, InvalidRecipient, "/addcontact"),
        ({"text": "Hi", "recipients": "0151 234567"}, InvalidRecipient, "country code"),
        ({"template": "missing"}, NotFound, "/templates"),
    ],
)
async def test_refused_create_stores_nothing(
    service: Services,
    store: Store,
    hooks: RecordingHooks,
    kwargs: dict[str, str],
    error: type[Exception],
    match: str,
) -> None:
    arguments = {"recipients": "+12025550143", "when": "tomorrow 9:00", **kwargs}
    with pytest.raises(error, match=match):
        await service.schedules.create_schedule(OWNER, **arguments)  # type: ignore[arg-type]
    await assert_nothing_stored(store, hooks)


# --- drafts ----------------------------------------------------------------------------------


async def test_draft_previews_without_storing_and_save_stores_it(
    service: Services, store: Store, hooks: RecordingHooks
) -> None:
    await service.contacts.add_contact("Bob Stone", "+12025550143")
    drafted = await service.schedules.draft_schedule(
        OWNER,
        recipients="Bob Stone, 120363041234567890@g.us",
        when="every day at 9:00",
        text="Morning, it is {weekday} {time}",
    )
    draft, preview = drafted.draft, drafted.preview
    await assert_nothing_stored(store, hooks)
    assert draft.next_run_at == TOMORROW_9_BERLIN
    assert [t.at for t in preview.next_runs] == [
        TOMORROW_9_BERLIN + timedelta(days=n) for n in range(3)
    ]
    assert preview.next_runs[0].local == "Sun 29 Nov 2026 09:00"
    assert preview.description == when.describe(draft.rule)
    assert [(m.label, m.text) for m in preview.messages] == [
        ("Bob Stone (+12025550143)", "Morning, it is Sunday 09:00"),
        ("120363041234567890@g.us", "Morning, it is Sunday 09:00"),
    ]
    assert preview.schedule_id is None

    schedule = await service.schedules.save_draft(draft)
    assert schedule.next_run_at == TOMORROW_9_BERLIN
    assert [s.id for s in await store.list_schedules()] == [schedule.id]
    assert hooks.schedules_changes == 1


async def test_a_draft_whose_time_passed_while_waiting_is_refused(
    service: Services, store: Store, clock: FakeClock, hooks: RecordingHooks
) -> None:
    drafted = await service.schedules.draft_schedule(
        OWNER, recipients="+12025550143", when="in 10 minutes", text="Hi"
    )
    draft = drafted.draft
    await clock.advance(11 * 60)
    with pytest.raises(InvalidWhen, match="passed"):
        await service.schedules.save_draft(draft)
    await assert_nothing_stored(store, hooks)


async def test_a_draft_takes_a_template_by_id_and_refuses_one_deleted_meanwhile(
    service: Services, store: Store, hooks: RecordingHooks
) -> None:
    template = await service.templates.add_template("greeting", "Hello {name}")
    await service.contacts.add_contact("Ann", "+12025550143")
    drafted = await service.schedules.draft_schedule(
        OWNER, recipients="Ann", when="in 10 minutes", template=template.id
    )
    assert drafted.draft.template_id == template.id
    assert drafted.draft.template_name == "greeting" and drafted.draft.text is None
    assert [m.text for m in drafted.preview.messages] == ["Hello Ann"]
    await service.templates.delete_template("greeting")
    with pytest.raises(NotFound, match="deleted meanwhile"):
        await service.schedules.check_draft_message(
            recipients="+12025550143", template=template.id
        )
    await assert_nothing_stored(store, hooks)


async def test_a_draft_survives_a_json_round_trip(service: Services) -> None:
    """The bot keeps the draft in its wizard state between messages."""
    from core.services import Draft

    drafted = await service.schedules.draft_schedule(
        OWNER, recipients="+12025550143", when="in 10 minutes", text="Hi", media=PHOTO
    )
    draft = drafted.draft
    assert Draft.model_validate_json(draft.model_dump_json()) == draft


# --- list / get ------------------------------------------------------------------------------


async def test_list_by_owner_and_get_unknown(service: Services) -> None:
    mine = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="in 2h", text="a"
    )
    await service.schedules.create_schedule(
        OWNER + 1, recipients="+12025550143", when="in 2h", text="b"
    )
    assert [s.id for s in await service.schedules.list_schedules(OWNER)] == [mine.id]
    assert len(await service.schedules.list_schedules()) == 2
    with pytest.raises(NotFound, match="/list"):
        await service.schedules.get_schedule(OWNER, 999)


# --- edit ------------------------------------------------------------------------------------


async def test_edit_text_when_and_recipients(service: Services, hooks: RecordingHooks) -> None:
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="tomorrow 9:00", text="Hi"
    )
    edited = await service.schedules.edit_schedule(
        schedule.owner_id, schedule.id, text="Hello {weekday}"
    )
    assert edited.text == "Hello {weekday}"
    edited = await service.schedules.edit_schedule(
        schedule.owner_id, schedule.id, when="every monday at 18:00"
    )
    assert edited.rule.kind is RuleKind.cron
    assert edited.next_run_at == datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
    edited = await service.schedules.edit_schedule(
        schedule.owner_id, schedule.id, recipients="+4915123456789, +12025550143"
    )
    assert [r.address for r in edited.recipients] == ["+4915123456789", "+12025550143"]
    assert edited.text == "Hello {weekday}"
    assert hooks.schedules_changes == 4


async def test_edit_to_a_template_and_back_to_text(service: Services) -> None:
    template = await service.templates.add_template("t", "From template")
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="tomorrow 9:00", text="Hi"
    )
    edited = await service.schedules.edit_schedule(schedule.owner_id, schedule.id, template="T")
    assert (edited.template_id, edited.text) == (template.id, None)
    edited = await service.schedules.edit_schedule(schedule.owner_id, schedule.id, text="Plain")
    assert (edited.template_id, edited.text) == (None, "Plain")


async def test_refused_edits_change_nothing(
    service: Services, store: Store, hooks: RecordingHooks
) -> None:
    await service.contacts.add_contact("Anna", "+4915123456789", {"company": "ACME"})
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="Anna", when="tomorrow 9:00", text="Hi {company}"
    )
    with pytest.raises(InvalidInput, match="Nothing to change"):
        await service.schedules.edit_schedule(schedule.owner_id, schedule.id)
    with pytest.raises(InvalidTemplate, match="company"):
        await service.schedules.edit_schedule(
            schedule.owner_id, schedule.id, recipients="+12025550143"
        )
    with pytest.raises(InvalidWhen):
        await service.schedules.edit_schedule(schedule.owner_id, schedule.id, when="someday")
    with pytest.raises(MessageTooLong):
        await service.schedules.edit_schedule(
            schedule.owner_id, schedule.id, text="x" * (WHATSAPP_TEXT_LIMIT + 1)
        )
    with pytest.raises(NotFound):
        await service.schedules.edit_schedule(OWNER, 999, text="x")
    assert await store.get_schedule(schedule.id) == schedule
    assert hooks.schedules_changes == 1


async def test_a_done_schedule_given_a_new_time_is_active_again(
    service: Services, store: Store
) -> None:
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="in 10 minutes", text="Hi"
    )
    await store.update_schedule(schedule.id, state=ScheduleState.done, next_run_at=None)
    edited = await service.schedules.edit_schedule(
        schedule.owner_id, schedule.id, when="tomorrow 9:00"
    )
    assert edited.state is ScheduleState.active
    assert edited.next_run_at == TOMORROW_9_BERLIN


# --- pause / resume / delete -----------------------------------------------------------------


async def test_pause_and_resume_recomputes_from_now(
    service: Services, clock: FakeClock, hooks: RecordingHooks
) -> None:
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="every day at 9:00", text="Hi"
    )
    paused = await service.schedules.pause(schedule.owner_id, schedule.id)
    assert paused.state is ScheduleState.paused
    assert await service.schedules.pause(schedule.owner_id, schedule.id) == paused
    await clock.advance(3 * 24 * 3600)  # Tuesday 1 Dec, 11:00 Berlin
    resumed = await service.schedules.resume(schedule.owner_id, schedule.id)
    assert resumed.state is ScheduleState.active
    assert resumed.next_run_at == datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    assert await service.schedules.resume(schedule.owner_id, schedule.id) == resumed
    assert hooks.schedules_changes == 3


async def test_a_done_one_time_schedule_cannot_be_resumed_or_paused(
    service: Services, store: Store
) -> None:
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="in 10 minutes", text="Hi"
    )
    await store.update_schedule(schedule.id, state=ScheduleState.done, next_run_at=None)
    with pytest.raises(InvalidState, match="/runnow"):
        await service.schedules.resume(schedule.owner_id, schedule.id)
    with pytest.raises(InvalidState, match="done"):
        await service.schedules.pause(schedule.owner_id, schedule.id)
    stored = await store.get_schedule(schedule.id)
    assert stored is not None and stored.state is ScheduleState.done


async def test_a_paused_one_time_schedule_whose_time_passed_is_done_when_resumed(
    service: Services, clock: FakeClock
) -> None:
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="in 10 minutes", text="Hi"
    )
    await service.schedules.pause(schedule.owner_id, schedule.id)
    await clock.advance(3600)
    resumed = await service.schedules.resume(schedule.owner_id, schedule.id)
    assert resumed.state is ScheduleState.done and resumed.next_run_at is None
    assert (
        await service.schedules.get_schedule(schedule.owner_id, schedule.id)
    ).state is ScheduleState.done


async def test_delete_removes_the_schedule_but_keeps_its_runs(
    service: Services, store: Store, hooks: RecordingHooks
) -> None:
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="in 10 minutes", text="Hi"
    )
    run, _ = await service.runs.run_now(schedule.owner_id, schedule.id)
    deleted = await service.schedules.delete(schedule.owner_id, schedule.id)
    assert deleted.id == schedule.id
    with pytest.raises(NotFound):
        await service.schedules.get_schedule(schedule.owner_id, schedule.id)
    with pytest.raises(NotFound):
        await service.schedules.delete(schedule.owner_id, schedule.id)
    assert await store.get_run(run.id) is not None
    assert len(await service.logs.logs(None, schedule_id=schedule.id)) == 1
    assert hooks.schedules_changes == 2


# --- preview ---------------------------------------------------------------------------------


async def test_preview_shows_times_rule_and_each_recipient_text(service: Services) -> None:
    await service.contacts.add_contact("Anna Maria", "+4915123456789", {"company": "ACME"})
    schedule = await service.schedules.create_schedule(
        OWNER,
        recipients="anna maria, +12025550143",
        when="every weekday at 8:30",
        text="{date} {time} {weekday}",
    )
    preview = await service.schedules.preview(schedule.owner_id, schedule.id)
    # Saturday now: the next weekdays are Monday 30 Nov, Tuesday 1 Dec, Wednesday 2 Dec.
    assert [t.at for t in preview.next_runs] == [
        datetime(2026, 11, 30, 7, 30, tzinfo=UTC),
        datetime(2026, 12, 1, 7, 30, tzinfo=UTC),
        datetime(2026, 12, 2, 7, 30, tzinfo=UTC),
    ]
    assert [t.local for t in preview.next_runs] == [
        "Mon 30 Nov 2026 08:30",
        "Tue 1 Dec 2026 08:30",
        "Wed 2 Dec 2026 08:30",
    ]
    assert preview.description == when.describe(schedule.rule)
    assert preview.timezone == "Europe/Berlin"
    assert preview.schedule_id == schedule.id
    assert preview.state is ScheduleState.active
    assert [(m.label, m.text) for m in preview.messages] == [
        ("Anna Maria (+4915123456789)", "2026-11-30 08:30 Monday"),
        ("+12025550143", "2026-11-30 08:30 Monday"),
    ]
    assert (
        len((await service.schedules.preview(schedule.owner_id, schedule.id, count=5)).next_runs)
        == 5
    )
    with pytest.raises(InvalidInput):
        await service.schedules.preview(schedule.owner_id, schedule.id, count=0)


async def test_preview_of_a_template_schedule_names_the_template(service: Services) -> None:
    await service.templates.add_template("hello", "Hello {name}")
    await service.contacts.add_contact("Bob Stone", "+12025550143")
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="Bob Stone", when="in 10 minutes", template="hello", media=PHOTO
    )
    preview = await service.schedules.preview(schedule.owner_id, schedule.id)
    assert preview.template_name == "hello"
    assert preview.media_filename == "cat.png"
    assert preview.messages[0].text == "Hello Bob Stone"
    assert len(preview.next_runs) == 1


async def test_preview_of_a_draft(service: Services) -> None:
    drafted = await service.schedules.draft_schedule(
        OWNER, recipients="+12025550143", when="every 2 hours", text="ping {time}"
    )
    preview = await service.schedules.preview(OWNER, drafted.draft, count=2)
    assert [t.at for t in preview.next_runs] == [
        START + timedelta(hours=2),
        START + timedelta(hours=4),
    ]
    assert preview.messages[0].text == "ping 13:00"


async def test_a_plain_text_may_hold_stray_braces(service: Services) -> None:
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="+12025550143", when="in 10 minutes", text="See you :-{ } {{name}}"
    )
    _, [delivery] = await service.runs.run_now(schedule.owner_id, schedule.id)
    assert delivery.text == "See you :-{ } {name}"


# --- {name} needs a name ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipients", "text", "who"),
    [
        ("+49 151 2345-6789", "Happy birthday {name}!", "+4915123456789 has none"),
        ("120363041234567890@g.us", "Morning {first_name}", "120363041234567890@g.us has none"),
        ("Anna, +12025550143, +4915123456789", "Hi {name}", "+12025550143 and 1 more have none"),
    ],
)
async def test_name_for_a_recipient_without_one_is_refused_before_anything_is_stored(
    service: Services,
    store: Store,
    hooks: RecordingHooks,
    recipients: str,
    text: str,
    who: str,
) -> None:
    await service.contacts.add_contact("Anna", "+4915599887766")
    with pytest.raises(InvalidTemplate) as refused:
        await service.schedules.create_schedule(
            OWNER, recipients=recipients, when="in 1 hour", text=text
        )
    message = str(refused.value)
    assert who in message
    assert "write the message without {" in message  # what to do instead
    if "+" in who:
        assert "/addcontact Anna +" in message
    with pytest.raises(InvalidTemplate):
        await service.schedules.draft_schedule(
            OWNER, recipients=recipients, when="in 1 hour", text=text
        )
    await assert_nothing_stored(store, hooks)


async def test_name_from_a_template_or_kept_through_an_edit_is_checked_too(
    service: Services,
) -> None:
    await service.contacts.add_contact("Anna Maria", "+4915123456789")
    await service.templates.add_template("birthday", "Happy birthday {first_name}!")
    with pytest.raises(InvalidTemplate, match=r"\+12025550143 has none"):
        await service.schedules.create_schedule(
            OWNER, recipients="+12025550143", when="in 1 hour", template="birthday"
        )
    schedule = await service.schedules.create_schedule(
        OWNER, recipients="anna maria", when="in 1 hour", template="birthday"
    )
    preview = await service.schedules.preview(schedule.owner_id, schedule.id)
    assert [m.text for m in preview.messages] == ["Happy birthday Anna!"]

    with pytest.raises(InvalidTemplate, match=r"\+12025550143 has none"):
        await service.schedules.edit_schedule(
            schedule.owner_id, schedule.id, recipients="anna maria, +12025550143"
        )
    unchanged = await service.schedules.get_schedule(schedule.owner_id, schedule.id)
    assert [r.address for r in unchanged.recipients] == ["+4915123456789"]
