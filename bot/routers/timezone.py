"""/tz and the first /start's question: the person's time zone for parsing and showing times.

A zone comes from a button, a typed city or zone name (matched against zoneinfo's names), or
a shared location (turned into a zone here, offline, by tzfpy's bundled boundaries).
"""

from __future__ import annotations

import difflib
import functools
import zoneinfo

import tzfpy
from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, User

from bot import ui
from bot.callbacks import ZoneAction, ZoneCb
from core.domain.errors import InvalidTimezone
from core.domain.when import validate_timezone
from core.services import Services

router = Router(name=__name__)

FIRST_KEY = "first"  # in the state's data: this is the first /start's question


class ZoneForm(StatesGroup):
    name = State()  # waiting for a typed city or zone name


@functools.cache
def _names() -> tuple[str, ...]:
    # Etc/GMT+1 and friends mean the opposite of what they say; they stay typeable by name.
    return tuple(sorted(z for z in zoneinfo.available_timezones() if not z.startswith("Etc/")))


# Big cities whose zone is named after another city: what people type for them.
ALIASES = {
    "beijing": "Asia/Shanghai",
    "mumbai": "Asia/Kolkata",
    "bombay": "Asia/Kolkata",
    "delhi": "Asia/Kolkata",
    "new_delhi": "Asia/Kolkata",
    "san_francisco": "America/Los_Angeles",
}

# How alike a typed name and a zone's city must be to be offered (difflib's ratio): 0.8 takes
# Berln and Tokio but not Beijing for Berlin or Mumbai for Dubai.
NEAR_CUTOFF = 0.8


def _key(name: str) -> str:
    """A name as compared, typed or a zone's: lower case, with a space, `_` and `-` alike
    (`new york` and `New_York`, `Port au Prince` and `Port-au-Prince`)."""
    return "_".join(name.lower().replace("-", " ").replace("_", " ").split())


def zone_matches(typed: str) -> list[str]:
    """The zones `typed` names: its exact IANA name, a big city's zone (`Beijing` ->
    Asia/Shanghai), or every zone whose city part (or any part) it is (`Berlin` ->
    Europe/Berlin, `new york` -> America/New_York)."""
    try:
        return [validate_timezone(typed)]
    except InvalidTimezone:
        pass
    wanted = _key(typed)
    if not wanted:
        return []
    if wanted in ALIASES:
        return [ALIASES[wanted]]
    by_city = [z for z in _names() if _key(z.rsplit("/", 1)[-1]) == wanted]
    if by_city:
        return by_city
    return [z for z in _names() if wanted in (_key(part) for part in z.split("/"))]


def near_zones(typed: str) -> list[str]:
    """Zones whose city part is spelled much like `typed` (`Berln` -> Europe/Berlin)."""
    cities = {_key(z.rsplit("/", 1)[-1]): z for z in _names() if "/" in z}
    found = difflib.get_close_matches(_key(typed), list(cities), n=3, cutoff=NEAR_CUTOFF)
    return [cities[c] for c in found]


async def await_name(state: FSMContext, *, first: bool | None = None) -> bool:
    """Read the next typed text as a zone name, unless a wizard waits for it instead.
    Whether typed text is read as a zone name now (else the texts ask for /tz NAME)."""
    if await state.get_state() not in (None, ZoneForm.name.state):
        return False
    await state.set_state(ZoneForm.name)
    if first is not None:
        await state.update_data({FIRST_KEY: first})
    return True


async def ask_zone(
    message: Message,
    state: FSMContext,
    services: Services,
    user_id: int,
    *,
    first: bool,
    intro: str = "",
) -> None:
    """Ask for the zone with buttons (after `intro`, in the same message); a typed answer
    (no command) is read as a zone name."""
    current = await services.users.timezone_of(user_id)
    typing = await await_name(state, first=first)
    await services.users.mark_timezone_asked(user_id)
    text, markup = ui.zone_question(current, services.clock.now(), typing=typing)
    await message.answer(ui.with_intro(intro, text), reply_markup=markup)


# Quotes and Markdown around a name copied from somewhere: `Europe/Berlin`, "Berlin".
_WRAPPING = "`'\"*_“”‘’<>"


async def choose(
    message: Message, typed: str, state: FSMContext, services: Services, user_id: int
) -> None:
    typed = typed.strip().strip(_WRAPPING).strip()
    if not typed:
        await ask_zone(message, state, services, user_id, first=False)
        return
    matches = zone_matches(typed)
    if len(matches) == 1:
        await set_zone(message, matches[0], state, services, user_id)
        return
    typing = await await_name(state)
    if matches:
        text, markup = ui.zone_choices(typed, matches, typing=typing)
        await message.answer(text, reply_markup=markup)
        return
    near = near_zones(typed)
    await message.answer(
        ui.zone_unknown(typed, near, typing=typing),
        reply_markup=ui.zone_buttons(near) if near else None,
    )


async def set_zone(
    message: Message, zone: str, state: FSMContext, services: Services, user_id: int
) -> None:
    first = False
    if await state.get_state() == ZoneForm.name.state:
        first = bool((await state.get_data()).get(FIRST_KEY))
        await state.clear()  # only the question's own state: a wizard keeps going
    zone = await services.users.set_timezone(user_id, zone)
    others = await services.schedules.schedules_in_other_zones(user_id, zone)
    text, markup = ui.zone_set(zone, services.clock.now(), others)
    if first:
        text = ui.first_zone_set(text)
    await message.answer(text, reply_markup=markup)


@router.message(Command("tz"))
async def timezone(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    services: Services,
    event_from_user: User,
) -> None:
    if not command.args:
        await ask_zone(message, state, services, event_from_user.id, first=False)
        return
    await choose(message, command.args, state, services, event_from_user.id)


@router.message(ZoneForm.name, F.text & ~F.text.startswith("/"))
async def typed_zone(
    message: Message, state: FSMContext, services: Services, event_from_user: User
) -> None:
    await choose(message, message.text or "", state, services, event_from_user.id)


@router.message(F.location)
async def shared_location(
    message: Message, state: FSMContext, services: Services, event_from_user: User
) -> None:
    location = message.location
    assert location is not None  # the filter says so
    zone = tzfpy.get_tz(location.longitude, location.latitude)
    if not zone:
        typing = await await_name(state)
        await message.answer(ui.zone_nowhere(typing=typing))
        return
    await set_zone(message, zone, state, services, event_from_user.id)


@router.callback_query(ZoneCb.filter(F.action == ZoneAction.choose))
async def pressed_zone(
    query: CallbackQuery,
    callback_data: ZoneCb,
    state: FSMContext,
    services: Services,
    event_from_user: User,
) -> None:
    zone = validate_timezone(callback_data.zone)  # forged data is refused like a typed name
    await query.answer(zone)
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)
        await set_zone(query.message, zone, state, services, event_from_user.id)


@router.callback_query(ZoneCb.filter(F.action == ZoneAction.move))
async def move_schedules(
    query: CallbackQuery, callback_data: ZoneCb, services: Services, event_from_user: User
) -> None:
    current = await services.users.timezone_of(event_from_user.id)
    if validate_timezone(callback_data.zone) != current:
        # A button of an earlier /tz: the person has picked another zone since.
        await query.answer(ui.zone_changed_since(callback_data.zone, current), show_alert=True)
        return
    moved, kept = await services.schedules.move_schedules(event_from_user.id, callback_data.zone)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)
        await query.message.answer(ui.zones_moved(callback_data.zone, moved, kept))
