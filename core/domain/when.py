"""The "when" language: what a person types becomes a `Rule`, and a `Rule` becomes fire times.

Forms: one-time (`tomorrow 9:00`, `24.12.2026 18:00`, `in 10 minutes`), recurring (`every
weekday at 8:30`, `every month on the 1st at 10:00`, `cron 0 9 * * 1-5`) and intervals
(`every 2 hours`). Nothing is guessed: an input that is ambiguous, impossible, misspelt or in
the past is an `InvalidWhen` whose message shows an example that works.

Recurring rules are stored as standard 5-field cron (Sunday is 0 or 7) in the person's zone.
Fire times come from APScheduler's `CronTrigger` evaluated over local wall-clock time; each
wall time is then mapped to an instant here, because APScheduler 3.11.3 gets DST days wrong:
on a fall-back day it fires a repeated time twice and then keeps returning an instant that is
not after the one asked for (a loop), and for a time inside a spring-forward gap it fires an
hour late (02:30 becomes 03:30). The rules applied instead:

- a local time that does not exist (spring-forward gap) fires once, at the first instant after
  the gap (02:30 becomes 03:00 in Europe/Berlin);
- a local time that occurs twice (fall back) fires once, at its first occurrence;
- every other local time fires at that local time, so a 09:00 rule stays 09:00 across changes;
- except, as in Vixie and Debian cron, a cron expression whose minute or hour field starts with
  `*` (`*/5 * * * *`, `0 * * * *`, `@hourly`) runs by the clock: at every instant whose local
  time matches, so both passes of a repeated hour and nothing inside a gap.

A one-time rule at a time that does not exist is described with the gap ("02:00-02:59 do not
exist that night, it goes at 03:00"); one at a time that occurs twice with the zone's name for
it (`02:30 CEST`), which `parse_when` reads back to the same occurrence.

The two day fields of a cron expression are OR-ed only when neither starts with `*` (Vixie
cron): `0 9 1,15 * 1` is the 1st, the 15th and Mondays, `0 9 */2 * 1` odd-numbered Mondays.

`RuleTrigger` wraps a rule as an APScheduler trigger with the same rules. Parsed cron
expressions (with their triggers, which work on wall-clock time and so serve every zone) and
zones are cached, so a cron next fire time costs tens of microseconds
(`python -m tests.when.bench_when`).
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import re
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import (  # type: ignore[import-untyped, unused-ignore]
    BaseTrigger,
)
from apscheduler.triggers.cron import (  # type: ignore[import-untyped, unused-ignore]
    CronTrigger,
)

from core.domain.errors import InvalidTimezone, InvalidWhen
from core.domain.models import Rule, RuleKind

__all__ = [
    "EXAMPLES",
    "RuleTrigger",
    "describe",
    "end_words",
    "ending_after",
    "format_local",
    "next_fire_time",
    "next_fire_times",
    "occurrences_left",
    "parse_cron",
    "parse_when",
    "validate_timezone",
]

# Each of these parses at any moment in any zone (tests pin that), so they can be buttons.
EXAMPLES: tuple[str, ...] = (
    "tomorrow 9:00",
    "in 10 minutes",
    "monday 9am",
    "every day at 9:00",
    "every weekday at 8:30",
    "every monday,friday at 18:00",
    "every 2 hours",
    "every month on the 1st at 10:00",
    "cron 0 9 * * 1-5",
)

_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DAY_ABBR = tuple(name[:3] for name in _DAY_NAMES)
_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MONTH_ABBR = tuple(name[:3] for name in _MONTH_NAMES)

# Python weekday (Monday 0) by every spelling a person may use; plurals only after "every".
_WEEKDAY_SINGULAR: dict[str, int] = {
    **{name.lower(): i for i, name in enumerate(_DAY_NAMES)},
    **{name[:3].lower(): i for i, name in enumerate(_DAY_NAMES)},
    **{"tues": 1, "weds": 2, "thur": 3, "thurs": 3},
}
_WEEKDAY_WORDS: dict[str, int] = {
    **_WEEKDAY_SINGULAR,
    **{name.lower() + "s": i for i, name in enumerate(_DAY_NAMES)},
}
_MONTH_WORDS: dict[str, int] = {
    **{name.lower(): i for i, name in enumerate(_MONTH_NAMES, start=1)},
    **{name[:3].lower(): i for i, name in enumerate(_MONTH_NAMES, start=1)},
    "sept": 9,
}


def _fail(problem: str, *examples: str) -> InvalidWhen:
    """An InvalidWhen whose message ends with what to type instead."""
    shown = examples or EXAMPLES[:3]
    tries = " or ".join(f"'{example}'" for example in shown)
    return InvalidWhen(f"{problem}; try {tries}.")


# --- time zones ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    """Every IANA name by its lower-case spelling."""
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def validate_timezone(name: str) -> str:
    """The canonical IANA spelling of `name`, or InvalidTimezone with an example."""
    cleaned = name.strip()
    if not cleaned:
        raise InvalidTimezone("Say a time zone, as an IANA name like 'Europe/Berlin'.")
    canonical = _zone_names().get(cleaned.lower())
    if canonical is None and cleaned.upper() in {"UTC", "Z", "GMT"}:
        canonical = "UTC"
    if canonical is None:
        hint = ""
        suffix = "/" + cleaned.lower().replace(" ", "_")
        near = sorted(v for k, v in _zone_names().items() if k.endswith(suffix))
        if not near:
            near = difflib.get_close_matches(cleaned, sorted(_zone_names().values()), n=1)
        if near:
            hint = f" (did you mean '{near[0]}'?)"
        raise InvalidTimezone(
            f"'{cleaned}' is not a time zone I know{hint}; use an IANA name like "
            "'Europe/Berlin' or 'America/New_York'."
        )
    return canonical


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(validate_timezone(name))


def _require_aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _is_ambiguous(local: datetime) -> bool:
    """True when the wall time of `local` occurs twice (a fall-back hour)."""
    other = local.replace(fold=1 - local.fold)
    return other.utcoffset() != local.utcoffset()


def format_local(instant: datetime, tz: str) -> str:
    """`Thu 24 Dec 2026 18:00` in zone `tz`; a wall time that occurs twice gets its zone
    abbreviation (`Sun 25 Oct 2026 02:30 CEST`) so the two are told apart."""
    local = _require_aware(instant, "instant").astimezone(_zone(tz))
    return f"{_day_words(local)} {_clock_words(local)}"


def _day_words(local: datetime) -> str:
    """`Thu 24 Dec 2026`, in English whatever the process locale."""
    return f"{_DAY_ABBR[local.weekday()]} {local.day} {_MONTH_ABBR[local.month - 1]} {local.year}"


def _clock_words(local: datetime) -> str:
    """`18:00`, or `02:30 CEST` when that wall time occurs twice."""
    return f"{local:%H:%M} {local.tzname()}" if _is_ambiguous(local) else f"{local:%H:%M}"


def resolve_local(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of naive local `wall` time: a repeated time maps to its first
    occurrence, a skipped one (DST gap) to the first instant after the gap."""
    first = wall.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # In a gap: fold=1 reads the wall time with the offset after the change, fold=0 with the
    # one before, so the change lies between the two readings. Find it to the second.
    low = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    high = int(first.timestamp())
    if low > high:  # a zone whose offset goes down across a gap (never seen; stay safe)
        low, high = high, low
    after_offset = datetime.fromtimestamp(high, zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == after_offset:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


# --- cron ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: dict[str, int]


_DOW_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_CRON_FIELDS = (
    _FieldSpec("minute", 0, 59, {}),
    _FieldSpec("hour", 0, 23, {}),
    _FieldSpec("day-of-month", 1, 31, {}),
    _FieldSpec("month", 1, 12, {name.lower(): i for i, name in enumerate(_MONTH_ABBR, 1)}),
    _FieldSpec("day-of-week", 0, 7, _DOW_NAMES),
)
_CRON_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_CRON_EXAMPLE = "cron 0 9 * * 1-5"
# Bounds that keep every rule's arithmetic far from datetime's limits.
_LONGEST_INTERVAL_S = 366 * 86400
_LAST_YEAR = 2199
_FIRST_YEAR = 1970
_CRON_PART = re.compile(r"(?P<base>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>[^/]*))?")
# APScheduler's day-of-week names, by standard cron number (Sunday 0).
_APS_DOW = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# Days in each month at most (February 29 in leap years).
_MONTH_MAX_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _cron_value(token: str, spec: _FieldSpec) -> int:
    if token.isdecimal() and len(token) > 4:
        raise _fail(
            f"cron {spec.name} field: {token[:8]}... is out of range {spec.low}-{spec.high}",
            _CRON_EXAMPLE,
        )
    if token.isdecimal():  # not isdigit: int() refuses superscript and circled digits
        value = int(token)
    elif token in spec.names:
        value = spec.names[token]
    else:
        known = ", ".join(spec.names) if spec.names else "numbers only"
        raise _fail(f"cron {spec.name} field: '{token}' is not a value ({known})", _CRON_EXAMPLE)
    if not spec.low <= value <= spec.high:
        note = " (Sunday is 0 or 7)" if spec.name == "day-of-week" else ""
        raise _fail(
            f"cron {spec.name} field: {value} is out of range {spec.low}-{spec.high}{note}",
            _CRON_EXAMPLE,
        )
    return value


def _parse_cron_field(text: str, spec: _FieldSpec) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        match = _CRON_PART.fullmatch(part)
        if not match:
            raise _fail(f"cron {spec.name} field: '{part or text}' is not valid", _CRON_EXAMPLE)
        base, step_text = match["base"], match["step"]
        if base == "*":
            first, last = spec.low, spec.high
        elif "-" in base:
            start, end = base.split("-")
            first, last = _cron_value(start, spec), _cron_value(end, spec)
            if first > last:
                raise _fail(
                    f"cron {spec.name} field: range '{base}' runs backwards", _CRON_EXAMPLE
                )
        else:
            first = last = _cron_value(base, spec)
            if step_text is not None:
                raise _fail(
                    f"cron {spec.name} field: a step needs a range, write "
                    f"'{base}-{spec.high}/{step_text}' or '*/{step_text}'",
                    _CRON_EXAMPLE,
                )
        step = 1
        if step_text is not None:
            if (
                not step_text.isdecimal()
                or len(step_text) > 4
                or not 1 <= int(step_text) <= spec.high - spec.low + 1
            ):
                raise _fail(
                    f"cron {spec.name} field: step '{step_text}' must be a number from 1 to "
                    f"{spec.high - spec.low + 1}",
                    _CRON_EXAMPLE,
                )
            step = int(step_text)
        if spec.name == "day-of-week" and base == "*":
            last = 6  # `*` is every day once; 7 is Sunday again
        values.update(range(first, last + 1, step))
    if spec.name == "day-of-week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


def _aps_list(values: frozenset[int], spec: _FieldSpec) -> str:
    """`values` as an APScheduler field: `*` when full, else runs like `1-5,7`."""
    if spec.name == "day-of-week":
        if values == frozenset(range(7)):
            return "*"
        return ",".join(_APS_DOW[v] for v in sorted(values))
    if values == frozenset(range(spec.low, spec.high + 1)):
        return "*"
    ordered = sorted(values)
    runs: list[str] = []
    start = previous = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        runs.append(str(start) if start == previous else f"{start}-{previous}")
        if value is not None:
            start = previous = value
    return ",".join(runs)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed standard cron expression (sets use Sunday 0) and its wall-clock triggers."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool
    triggers: tuple[BaseTrigger, ...]
    # Vixie cron's "wildcard" job: the minute or hour field starts with `*`. It runs by the
    # clock on DST nights (both passes of a repeated hour, nothing in a gap).
    by_clock: bool = False

    def next_wall(self, wall: datetime) -> datetime | None:
        """The first naive local wall time strictly after naive `wall` that matches."""
        start = wall.replace(tzinfo=UTC) + timedelta(microseconds=1)
        found = [t.get_next_fire_time(None, start) for t in self.triggers]
        times = [f for f in found if f is not None]
        return min(times).replace(tzinfo=None) if times else None

    def matches(self, wall: datetime) -> bool:
        """Whether naive local `wall` (whole minute) is one of the expression's times."""
        day_ok = wall.day in self.days
        weekday_ok = (wall.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            day_match = day_ok or weekday_ok  # Vixie cron: either field may match
        else:
            day_match = day_ok and weekday_ok
        return (
            wall.second == 0
            and wall.minute in self.minutes
            and wall.hour in self.hours
            and wall.month in self.months
            and day_match
        )


@functools.lru_cache(maxsize=4096)
def parse_cron(expression: str) -> CronSchedule:
    """Parse and check a standard 5-field cron expression (or `@daily` and friends).

    The result is cached: its triggers work on wall-clock time, so one serves every zone.
    """
    text = " ".join(expression.lower().split())
    text = _CRON_MACROS.get(text, text)
    fields = text.split(" ")
    if len(fields) != 5:
        raise _fail(
            f"a cron rule has 5 fields (minute hour day-of-month month day-of-week), "
            f"'{text}' has {len(fields) if text else 0}",
            _CRON_EXAMPLE,
        )
    minutes, hours, days, months, weekdays = (
        _parse_cron_field(field, spec) for field, spec in zip(fields, _CRON_FIELDS, strict=True)
    )
    # Vixie cron: the day fields are OR-ed only when neither starts with `*` (`*/2` ANDs too).
    days_restricted = not fields[2].startswith("*")
    weekdays_restricted = not fields[4].startswith("*")
    if not (days_restricted and weekdays_restricted) and not any(
        day <= _MONTH_MAX_DAYS[month - 1] for day in days for month in months
    ):
        raise _fail(
            f"cron '{text}' never fires: day-of-month {fields[2]} does not occur in month "
            f"{fields[3]}",
            _CRON_EXAMPLE,
        )
    specs = _CRON_FIELDS
    common = {
        "minute": _aps_list(minutes, specs[0]),
        "hour": _aps_list(hours, specs[1]),
        "month": _aps_list(months, specs[3]),
        "second": "0",
        "timezone": UTC,
    }
    day_text, weekday_text = _aps_list(days, specs[2]), _aps_list(weekdays, specs[4])
    if days_restricted and weekdays_restricted:
        # Standard cron fires when either day field matches; APScheduler wants both.
        triggers: tuple[BaseTrigger, ...] = (
            CronTrigger(day=day_text, day_of_week="*", **common),
            CronTrigger(day="*", day_of_week=weekday_text, **common),
        )
    else:
        triggers = (CronTrigger(day=day_text, day_of_week=weekday_text, **common),)
    return CronSchedule(
        expression=text,
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=weekdays,
        days_restricted=days_restricted,
        weekdays_restricted=weekdays_restricted,
        triggers=triggers,
        by_clock=fields[0].startswith("*") or fields[1].startswith("*"),
    )


# --- fire times ------------------------------------------------------------------------------


def next_fire_time(rule: Rule, *, after: datetime) -> datetime | None:
    """The first fire instant strictly after `after` (aware, UTC out), None when none is left
    (a rule that ends has none after `ends_at`)."""
    found = _next_unbounded(rule, after=after)
    if found is not None and rule.ends_at is not None and found > rule.ends_at:
        return None
    return found


def _next_unbounded(rule: Rule, *, after: datetime) -> datetime | None:
    """`next_fire_time` without the rule's end."""
    after_utc = _require_aware(after, "after")
    if rule.kind is RuleKind.once:
        if rule.at is None:
            raise ValueError("a once rule needs `at`")
        at = _require_aware(rule.at, "rule.at")
        return at if at > after_utc else None
    if rule.kind is RuleKind.interval:
        if rule.every_seconds is None or rule.start is None or rule.every_seconds <= 0:
            raise ValueError("an interval rule needs a positive `every_seconds` and `start`")
        start = _require_aware(rule.start, "rule.start")
        every = timedelta(seconds=rule.every_seconds)
        steps = 1 if after_utc < start + every else (after_utc - start) // every + 1
        return start + steps * every
    if rule.cron is None:
        raise ValueError("a cron rule needs `cron`")
    schedule = parse_cron(rule.cron)
    zone = _zone(rule.timezone)
    if schedule.by_clock:
        return _next_by_clock(schedule, zone, after_utc)
    wall = after_utc.astimezone(zone).replace(tzinfo=None)
    # Wall times only grow, and their instants never shrink; a candidate can still land at or
    # before `after` when `after` is in the second pass of a repeated hour: skip those.
    while True:
        candidate = schedule.next_wall(wall)
        if candidate is None:
            return None
        instant = resolve_local(candidate, zone)
        if instant > after_utc:
            return instant
        wall = candidate


def _next_by_clock(schedule: CronSchedule, zone: ZoneInfo, after: datetime) -> datetime | None:
    """The first instant after `after` whose local time matches: a repeated hour runs in both
    passes, a skipped one not at all (Vixie cron's rule for wildcard jobs)."""
    local = after.astimezone(zone)
    wall = local.replace(tzinfo=None)
    if local.fold == 0 and _is_ambiguous(local):
        # In the first pass of a repeated window: what is left of it, then its second pass.
        change, first_wall, end_wall = _repeat_window(local, zone)
        found = schedule.next_wall(wall)
        if found is not None and found < end_wall:
            return resolve_local(found, zone)
        found = schedule.next_wall(first_wall - timedelta(microseconds=1))
        if found is not None and found < end_wall:
            return change + (found - first_wall)
        wall = end_wall - timedelta(microseconds=1)
    while True:
        found = schedule.next_wall(wall)
        if found is None:
            return None
        for fold in (0, 1):
            instant = found.replace(tzinfo=zone, fold=fold).astimezone(UTC)
            if instant.astimezone(zone).replace(tzinfo=None) == found and instant > after:
                return instant
        wall = found  # in a gap: that local time never happens


def _repeat_window(local: datetime, zone: ZoneInfo) -> tuple[datetime, datetime, datetime]:
    """For `local` in the first pass of a repeated window: the instant the clocks go back, and
    the first and the end wall time of the window."""
    low = int(local.timestamp())
    high = int(local.replace(fold=1).timestamp())
    before = local.utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    change = datetime.fromtimestamp(high, UTC)
    first_wall = change.astimezone(zone).replace(tzinfo=None)
    back = (before or timedelta(0)) - (change.astimezone(zone).utcoffset() or timedelta(0))
    return change, first_wall, first_wall + back


def next_fire_times(rule: Rule, *, after: datetime, count: int) -> list[datetime]:
    """Up to `count` fire instants after `after`, in order (fewer when the rule runs out)."""
    times: list[datetime] = []
    current = after
    while len(times) < count:
        found = next_fire_time(rule, after=current)
        if found is None:
            break
        times.append(found)
        current = found
    return times


class RuleTrigger(BaseTrigger):  # type: ignore[misc]
    """An APScheduler trigger firing when `rule` does, with the DST rules of this module."""

    __slots__ = ("rule",)

    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if previous_fire_time is not None:
            return next_fire_time(self.rule, after=previous_fire_time)
        return next_fire_time(self.rule, after=now - timedelta(microseconds=1))

    def __repr__(self) -> str:
        return f"<RuleTrigger {describe(self.rule)}>"


# --- parsing ---------------------------------------------------------------------------------


def _alternatives(words: Iterable[str]) -> str:
    return "|".join(sorted(set(words), key=len, reverse=True))


_WD_ONE = _alternatives(_WEEKDAY_SINGULAR)
_WD_ANY = _alternatives(_WEEKDAY_WORDS)
_MONTHS = _alternatives(_MONTH_WORDS)
_TIME = r"\d{1,2}(?::\d{1,2})?(?:am|pm)?|noon|midnight"
_DATE = (
    rf"today|tomorrow|(?:next )?(?:{_WD_ONE})|\d{{4}}-\d{{1,2}}-\d{{1,2}}"
    rf"|\d{{1,2}}\.\d{{1,2}}\.\d{{4}}"
    rf"|(?:(?:{_WD_ONE})[, ])?(?:\d{{1,2}} (?:{_MONTHS}) |(?:{_MONTHS}) \d{{1,2}}[, ])\d{{4}}"
)
# A wall time that occurs twice is described with its zone's name for it (`02:30 CEST`,
# `01:30 +11`); that name after the time picks the occurrence.
_CLOCK_NAME = r"[a-z]{3,5}|[+-]\d{2}(?:\d{2})?"
_ONCE_DATE_TIME = re.compile(
    rf"(?:once )?(?:on )?(?P<date>{_DATE})[, ](?:at )?(?P<time>{_TIME})"
    rf"(?: (?P<name>{_CLOCK_NAME}))?"
)
_ONCE_TIME_DATE = re.compile(rf"(?:once )?(?:at )?(?P<time>{_TIME})[, ](?:on )?(?P<date>{_DATE})")
_ONCE_TIME = re.compile(rf"(?:once )?(?:at )?(?P<time>{_TIME})")
_ONCE_DATE = re.compile(rf"(?:once )?(?:on )?(?P<date>{_DATE})")
_EVERY_DAY = re.compile(rf"(?:every ?day|daily|each day)(?: at)? (?P<time>{_TIME})")
_EVERY_WEEKDAY = re.compile(
    rf"(?:every (?:weekday|workday|working day)|(?:on )?weekdays)(?: at)? (?P<time>{_TIME})"
)
_DAY_LIST = rf"(?:{_WD_ANY})(?:(?:,and |,| and )(?:{_WD_ANY}))*"
_EVERY_DAYS = re.compile(rf"every (?P<days>{_DAY_LIST})(?: at)? (?P<time>{_TIME})")
_EVERY_MONTH = re.compile(
    r"(?:every month|monthly)(?: on)?(?: the)? (?P<day>\d{1,2})(?P<suffix>st|nd|rd|th)?"
    rf"(?: day)?(?: at)? (?P<time>{_TIME})"
)
_EVERY_MONTH_NO_TIME = re.compile(
    r"(?:every month|monthly)(?: on)?(?: the)? (?P<day>\d{1,2})(?:st|nd|rd|th)?(?: day)?"
)
# Birthdays and anniversaries: `every year on 24.12 at 9:00`, `yearly on december 24 midnight`.
_EVERY_YEAR = re.compile(
    r"(?:every year|yearly|annually)(?: on)?(?: the)? "
    rf"(?:(?P<d>\d{{1,2}})\.(?P<m>\d{{1,2}})\.?|(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?(?: of)? "
    rf"(?P<m2>{_MONTHS})|(?P<m3>{_MONTHS}) (?P<d3>\d{{1,2}})(?:st|nd|rd|th)?)"
    rf",?(?: at)? (?P<time>{_TIME})"
)
_EVERY_N = re.compile(r"every (?P<count>\d+|an?|one)? ?(?P<unit>[a-z]+)")
_IN = re.compile(r"in (?P<rest>.+)")
_PAST = re.compile(r"\byesterday\b|\bago$")
_TIME_IN = re.compile(r"\b\d{1,2}(?::\d{2})?(?:am|pm)\b|\b\d{1,2}:\d{2}\b")
# Far longer than any rule (a cron list of every minute is ~180 characters).
_LONGEST_INPUT = 400
_DURATION_PART = re.compile(r"(?P<count>\d+|an?|one) ?(?P<unit>[a-z]+)")

_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), 7 * 86400),
}
_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "twelve": 12,
}
_VOCABULARY = frozenset(
    {
        *_WEEKDAY_WORDS,
        *_MONTH_WORDS,
        *_UNITS,
        *("every", "daily", "weekday", "weekdays", "workday", "month", "monthly", "hourly"),
        *("year", "yearly", "annually", "of"),
        *(
            "on",
            "the",
            "at",
            "in",
            "today",
            "tomorrow",
            "next",
            "once",
            "cron",
            "noon",
            "midnight",
            "each",
        ),
        *("am", "pm", "and", "st", "nd", "rd", "th", "an", "a", "one"),
        *("until", "till", "for", "time", "times", "twice", *_NUMBER_WORDS),
    }
)


def _normalize(text: str) -> str:
    s = " ".join(text.lower().split()).rstrip(".")
    s = re.sub(r"\s*,\s*", ",", s)
    s = re.sub(r"\b([ap])\.m\b\.?", r"\1m", s)
    s = re.sub(r"(\d) (am|pm)\b", r"\1\2", s)
    s = re.sub(r"(\d{4}-\d{1,2}-\d{1,2})t(\d)", r"\1 \2", s)
    return s


def _count(text: str) -> int:
    """The number a duration or repeat counts (`an`, `one` are 1), capped far above any that
    is accepted: int() refuses strings over 4,300 digits."""
    if not text.isdecimal():
        return 1
    return int(text) if len(text) <= 12 else 10**12


def _time_of(text: str) -> time:
    if text == "noon":
        return time(12, 0)
    if text == "midnight":
        # The midnight that starts the named day (00:00); previews show the full date.
        return time(0, 0)
    match = re.fullmatch(r"(\d{1,2})(?::(\d{1,2}))?(am|pm)?", text)
    if match is None:  # pragma: no cover - the callers' patterns only pass times
        raise _fail(f"'{text}' is not a time", "21:00", "9pm")
    hour, minute_text, half = int(match[1]), match[2], match[3]
    if minute_text is not None and len(minute_text) != 2:
        raise _fail(f"'{text}' is not a time: write minutes with two digits", "9:05")
    minute = int(minute_text or 0)
    if half is None and minute_text is None:
        raise _fail(
            f"'{text}' alone is not a clear time: say the minutes or am/pm",
            f"{hour}:00",
            f"{hour}am" if 1 <= hour <= 12 else "21:00",
        )
    if half is not None:
        if not 1 <= hour <= 12:
            raise _fail(
                f"'{text}' is not a time: with am/pm the hour runs from 1 to 12",
                f"{hour}:{minute:02}" if hour <= 23 else "21:00",
                "9pm",
            )
        hour = hour % 12 + (12 if half == "pm" else 0)
    elif hour > 23:
        raise _fail(f"{text} is not a time of day: hours run from 0 to 23", "21:00", "9pm")
    if minute > 59:
        raise _fail(f"{text} is not a time of day: minutes run from 00 to 59", "9:30")
    return time(hour, minute)


def _dated_examples(today: date) -> tuple[str, str]:
    """A date a month from `today` in both written forms, so an example is never past."""
    ahead = today + timedelta(days=30)
    return f"{ahead:%d.%m.%Y} 18:00", f"{ahead:%Y-%m-%d} 18:00"


def _calendar_date(year: int, month: int, day: int, typed: str, today: date) -> date:
    example = _dated_examples(today)[0]
    if not 1 <= month <= 12:
        raise _fail(f"{typed} is not a date: there is no month {month}", example)
    if year > _LAST_YEAR:
        raise _fail(f"{typed} is too far ahead", example)
    if year < _FIRST_YEAR:  # year 1 east of UTC is before datetime's first instant
        raise _fail(f"{typed} has passed", example)
    try:
        return date(year, month, day)
    except ValueError:
        if 1 <= year <= 9999 and day >= 1:
            nxt = date(year + (month == 12), month % 12 + 1, 1) if year < 9999 else None
            length = (nxt - date(year, month, 1)).days if nxt else 31
            raise _fail(
                f"{typed} is not a date: {_MONTH_NAMES[month - 1]} {year} has {length} days",
                example,
            ) from None
        raise _fail(f"{typed} is not a date", example) from None


def _date_of(text: str, today: date) -> date:
    if text == "today":
        return today
    if text == "tomorrow":
        return today + timedelta(days=1)
    word = text.removeprefix("next ")
    if word in _WEEKDAY_SINGULAR:
        # The next such day after today (a week ahead when today is that day).
        ahead = (_WEEKDAY_SINGULAR[word] - today.weekday() - 1) % 7 + 1
        return today + timedelta(days=ahead)
    if match := re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text):
        return _calendar_date(int(match[1]), int(match[2]), int(match[3]), text, today)
    if match := re.fullmatch(r"(\d{1,2})\.(\d{1,2})\.(\d{4})", text):
        return _calendar_date(int(match[3]), int(match[2]), int(match[1]), text, today)
    match = re.fullmatch(
        rf"(?:(?P<wd>{_WD_ONE})[, ])?(?:(?P<d>\d{{1,2}}) (?P<m>{_MONTHS}) "
        rf"|(?P<m2>{_MONTHS}) (?P<d2>\d{{1,2}})[, ])(?P<y>\d{{4}})",
        text,
    )
    if match is None:  # pragma: no cover - the callers' patterns only pass dates
        raise _fail(f"'{text}' is not a date", _dated_examples(today)[0])
    month_word, day_text = match["m"] or match["m2"], match["d"] or match["d2"]
    found = _calendar_date(int(match["y"]), _MONTH_WORDS[month_word], int(day_text), text, today)
    if match["wd"] is not None and _WEEKDAY_SINGULAR[match["wd"]] != found.weekday():
        raise _fail(
            f"{found.day} {_MONTH_ABBR[found.month - 1]} {found.year} is a "
            f"{_DAY_NAMES[found.weekday()]}, not a {_DAY_NAMES[_WEEKDAY_SINGULAR[match['wd']]]}",
            f"{found.day} {_MONTH_ABBR[found.month - 1]} {found.year} 18:00",
        )
    return found


def _hhmm(value: time) -> str:
    return f"{value.hour:02}:{value.minute:02}"


def _once(at: datetime, tz: str, now: datetime, *, typed: str, when_today: bool) -> Rule:
    if at <= now:
        if when_today:
            raise _fail(f"{typed} today has passed", f"tomorrow {typed}")
        raise _fail(
            f"{format_local(at, tz)} has passed (it is now {format_local(now, tz)} in {tz})",
            "tomorrow 9:00",
            "in 10 minutes",
        )
    return Rule(kind=RuleKind.once, timezone=tz, at=at)


def _parse_once(text: str, tz: str, zone: ZoneInfo, now: datetime) -> Rule | None:
    today = now.astimezone(zone).date()
    for pattern in (_ONCE_DATE_TIME, _ONCE_TIME_DATE):
        if match := pattern.fullmatch(text):
            clock = _time_of(match["time"])
            day = _date_of(match["date"], today)
            wall = datetime.combine(day, clock)
            name = match.groupdict().get("name")
            if name in _VOCABULARY:  # `tomorrow 9:00 and`: a word, not a clock's name
                raise _explain(text, today)
            at = _named_local(wall, zone, tz, name) if name else resolve_local(wall, zone)
            return _once(at, tz, now, typed=_hhmm(clock), when_today=match["date"] == "today")
    if match := _ONCE_TIME.fullmatch(text):
        # A bare time is its next occurrence: today if still ahead, else tomorrow.
        clock = _time_of(match["time"])
        at = resolve_local(datetime.combine(today, clock), zone)
        if at <= now:
            at = resolve_local(datetime.combine(today + timedelta(days=1), clock), zone)
        return _once(at, tz, now, typed=_hhmm(clock), when_today=False)
    if match := _ONCE_DATE.fullmatch(text):
        day_text = match["date"]
        _date_of(day_text, today)  # an impossible date says so first
        raise _fail(f"'{day_text}' needs a time", f"{day_text} 9:00", f"{day_text} 6pm")
    return None


def _named_local(wall: datetime, zone: ZoneInfo, tz: str, name: str) -> datetime:
    """The instant of naive `wall` that the zone calls `name` (`cest`, `+11`) then."""
    names: list[str] = []
    for fold in (0, 1):
        local = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC).astimezone(zone)
        if local.replace(tzinfo=None) == wall and local.tzname():
            if (local.tzname() or "").lower() == name:
                return local.astimezone(UTC)
            if local.tzname() not in names:
                names.append(local.tzname() or "")
    seasons = (datetime(wall.year, 1, 1, tzinfo=zone), datetime(wall.year, 7, 1, tzinfo=zone))
    if name.isalpha() and name not in {(d.tzname() or "").lower() for d in seasons}:
        raise _unknown_word(name)  # not a name this zone uses
    shown = f"{wall:%d.%m.%Y %H:%M}"
    if not names:
        raise _fail(f"{shown} does not exist in {tz} (the clocks skip it)", f"{shown}")
    raise _fail(f"{shown} {name.upper()} is not a time in {tz}", *(f"{shown} {n}" for n in names))


def _parse_in(rest: str, tz: str, zone: ZoneInfo, now: datetime, typed: str) -> Rule:
    cleaned = " ".join(re.sub(r"\band\b|,", " ", rest).split())
    parts = list(_DURATION_PART.finditer(cleaned))
    covered = "".join(p[0] for p in parts).replace(" ", "")
    if not parts or covered != cleaned.replace(" ", ""):
        raise _fail(f"'{typed}': say how long from now", "in 10 minutes", "in 2h")
    days = 0
    seconds = 0
    for part in parts:
        count_text, unit = part["count"], part["unit"]
        count = _count(count_text)
        if unit in {"mo", "month", "months", "y", "yr", "year", "years"}:
            raise _fail(
                f"'{typed}': months and years have no fixed length, give a date",
                _dated_examples(now.astimezone(zone).date())[0],
                "in 30 days",
            )
        if unit not in _UNITS:
            raise _unknown_word(unit, ("in 10 minutes", "in 2h", "in 1 day"))
        if _UNITS[unit] >= 86400:
            days += count * _UNITS[unit] // 86400
        else:
            seconds += count * _UNITS[unit]
    try:
        start = now
        if days:
            # Whole days keep the local clock time (`in 1 day` at 09:00 is 09:00 tomorrow).
            local = now.astimezone(zone).replace(tzinfo=None)
            start = resolve_local(local + timedelta(days=days), zone)
        at = start + timedelta(seconds=seconds)
        if at.year > _LAST_YEAR:
            raise OverflowError
    except OverflowError:
        raise _fail(f"'{typed}' is too far ahead", "in 10 minutes") from None
    if at <= now:
        raise _fail(f"'{typed}' is not in the future", "in 10 minutes")
    return Rule(kind=RuleKind.once, timezone=tz, at=at)


def _cron_rule(cron: str, tz: str) -> Rule:
    return Rule(kind=RuleKind.cron, timezone=tz, cron=parse_cron(cron).expression)


def _parse_recurring(text: str, tz: str, now: datetime) -> Rule | None:
    if match := _EVERY_DAY.fullmatch(text):
        clock = _time_of(match["time"])
        return _cron_rule(f"{clock.minute} {clock.hour} * * *", tz)
    if match := _EVERY_WEEKDAY.fullmatch(text):
        clock = _time_of(match["time"])
        return _cron_rule(f"{clock.minute} {clock.hour} * * 1-5", tz)
    if match := _EVERY_DAYS.fullmatch(text):
        clock = _time_of(match["time"])
        names = re.split(r",and |,| and ", match["days"])
        numbers = sorted({(_WEEKDAY_WORDS[name] + 1) % 7 for name in names})
        days = ",".join(str(n) for n in numbers)
        if len(numbers) == 7:
            days = "*"
        return _cron_rule(f"{clock.minute} {clock.hour} * * {days}", tz)
    if match := _EVERY_MONTH.fullmatch(text):
        day = int(match["day"])
        if not 1 <= day <= 31:
            raise _fail(f"a month has no day {day}", "every month on the 1st at 10:00")
        clock = _time_of(match["time"])
        return _cron_rule(f"{clock.minute} {clock.hour} {day} * *", tz)
    if match := _EVERY_YEAR.fullmatch(text):
        if match["d"] is not None:
            day, month = int(match["d"]), int(match["m"])
        elif match["d2"] is not None:
            day, month = int(match["d2"]), _MONTH_WORDS[match["m2"]]
        else:
            day, month = int(match["d3"]), _MONTH_WORDS[match["m3"]]
        if not 1 <= month <= 12:
            raise _fail(f"there is no month {month}", "every year on 24.12 at 9:00")
        if not 1 <= day <= _MONTH_MAX_DAYS[month - 1]:
            raise _fail(
                f"{_MONTH_NAMES[month - 1]} has no day {day}", "every year on 24.12 at 9:00"
            )
        clock = _time_of(match["time"])
        return _cron_rule(f"{clock.minute} {clock.hour} {day} {month} *", tz)
    if re.match(r"(?:every year|yearly|annually)\b", text):
        raise _fail(
            "say the day, the month and the time",
            "every year on 24.12 at 9:00",
            "yearly on december 24 at midnight",
        )
    if match := _EVERY_MONTH_NO_TIME.fullmatch(text):
        nth = _ordinal(int(match["day"]))
        raise _fail("say at what time of the day", f"every month on the {nth} at 10:00")
    if text in {"hourly", "every hour"}:
        return Rule(kind=RuleKind.interval, timezone=tz, every_seconds=3600, start=now)
    if match := _EVERY_N.fullmatch(text):
        count_text, unit = match["count"] or "1", match["unit"]
        count = _count(count_text)
        if unit in _UNITS and _UNITS[unit] in {60, 3600}:
            if count < 1:
                raise _fail(f"'{text}' is not a repeat", "every 2 hours", "every 30 minutes")
            every = count * _UNITS[unit]
            if every > _LONGEST_INTERVAL_S:
                raise _fail(
                    f"'{text}' is too long a repeat",
                    "every 24 hours",
                    "every month on the 1st at 10:00",
                )
            return Rule(kind=RuleKind.interval, timezone=tz, every_seconds=every, start=now)
        if unit in _UNITS and _UNITS[unit] == 1:
            raise _fail("the shortest repeat is every minute", "every 1 minute", "every 5 min")
        if unit in {"day", "days", "week", "weeks", "d", "w", "month", "months"}:
            raise _fail(
                f"'{text}' needs a time of day (and days of the week or month)",
                "every day at 9:00",
                "every monday at 9:00",
            )
        if unit in {"weekday", "workday"} or unit in _WEEKDAY_WORDS:
            raise _fail("say at what time", f"every {unit} at 9:00")
    return None


def _unknown_word(word: str, examples: tuple[str, ...] = ()) -> InvalidWhen:
    near = difflib.get_close_matches(word, sorted(_VOCABULARY), n=1, cutoff=0.7)
    guess = f" (did you mean '{near[0]}'?)" if near else ""
    if not examples and near:
        examples = tuple(e for e in EXAMPLES if near[0] in e.split())[:2]
    return _fail(f"I don't know the word '{word}'{guess}", *examples)


def parse_when(text: str, *, tz: str, now: datetime) -> Rule:
    """Read what a person typed as a rule in zone `tz`; `now` is the current instant."""
    zone_name = validate_timezone(tz)
    zone = _zone(zone_name)
    now_utc = _require_aware(now, "now")
    if len(text) > _LONGEST_INPUT:
        raise _fail(f"that is too long for a time ({len(text)} characters)", *EXAMPLES[:3])
    s = _normalize(text)
    if not s:
        raise _fail("say when", *EXAMPLES[:3])
    if _PAST.search(s):
        raise _past(s)
    if end := _END.fullmatch(s):
        typed_rule = end["rule"]
        if inner := _END.fullmatch(typed_rule):
            raise _fail("give one end, not two", *_end_examples(inner["rule"]))
        rule = _parse_rule(typed_rule, zone_name, zone, now_utc)
        return _with_end(rule, end, zone, now_utc)
    return _parse_rule(s, zone_name, zone, now_utc)


def _parse_rule(s: str, zone_name: str, zone: ZoneInfo, now_utc: datetime) -> Rule:
    """A normalized rule without an end clause."""
    if s.startswith("cron ") or s.startswith("@"):
        return _cron_rule(s.removeprefix("cron "), zone_name)
    if s == "cron":
        raise _fail("'cron' needs 5 fields", _CRON_EXAMPLE)
    if match := _IN.fullmatch(s):
        return _parse_in(match["rest"], zone_name, zone, now_utc, s)
    rule = _parse_recurring(s, zone_name, now_utc) or _parse_once(s, zone_name, zone, now_utc)
    if rule is not None:
        return rule
    raise _explain(s, now_utc.astimezone(zone).date())


def _past(s: str) -> InvalidWhen:
    """The refusal of `yesterday 10:00` or `10 minutes ago` (not a misspelt word)."""
    clock = _TIME_IN.search(s)
    at = clock[0] if clock else "9:00"
    return _fail(f"'{s}' is in the past", f"tomorrow {at}", f"today {at}")


def _explain(s: str, today: date) -> InvalidWhen:
    """The most useful error for input no form matched."""
    if re.search(r"\d{1,4}/\d{1,2}", s):
        return _fail(
            f"'{s}': a date with slashes can be read two ways, use dots or dashes",
            *_dated_examples(today),
        )
    if re.fullmatch(r"[\d*/,\-a-z]+( [\d*/,\-a-z]+){4}", s) and "*" in s:
        return _fail("a cron rule starts with the word 'cron'", f"cron {s}")
    first = s.split(" ")[0]
    if first in _WEEKDAY_WORDS and first not in _WEEKDAY_SINGULAR:
        day = first.removesuffix("s")
        return _fail(
            f"'{first}' could mean one or every {day}", f"every {day} at 9:00", f"{day} 9:00"
        )
    for word in re.findall(r"[a-z]+", s):
        if word not in _VOCABULARY:
            return _unknown_word(word)
    if re.search(r"\d\.\d{2}\b", s) and not re.search(r"\d\.\d{1,2}\.\d{4}", s):
        return _fail(f"'{s}': write times with a colon", re.sub(r"(\d)\.(\d\d)\b", r"\1:\2", s))
    if s.split(" ")[0] in {"every", "daily", "weekdays", "monthly"}:
        return _fail(
            f"I can't read '{s}' as a repeat (say which days and at what time)",
            "every day at 9:00",
            "every weekday at 8:30",
        )
    return _fail(f"I can't read '{s}' as a time", *EXAMPLES[:3])


# --- describing ------------------------------------------------------------------------------

_ORDINAL_SUFFIX = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd", 31: "st"}


def _ordinal(day: int) -> str:
    return f"{day}{_ORDINAL_SUFFIX.get(day, 'th')}"


def _join_words(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _plural(count: int, unit: str) -> str:
    return f"every {unit}" if count == 1 else f"every {count} {unit}s"


def describe(rule: Rule, *, end: bool = True) -> str:
    """The rule in words, e.g. `every weekday at 08:30 (Europe/Berlin), 5 times`; without
    `end`, what comes before its end."""
    return _describe_start(rule) + (_describe_end(rule) if end else "")


def _describe_start(rule: Rule) -> str:
    tz = rule.timezone
    if rule.kind is RuleKind.once:
        if rule.at is None:
            raise ValueError("a once rule needs `at`")
        local = _require_aware(rule.at, "rule.at").astimezone(_zone(tz))
        text = f"once on {_day_words(local)} at {_clock_words(local)}"
        if _is_ambiguous(local):
            which = "second" if local.fold else "first"
            return f"{text} ({tz}; {local:%H:%M} happens twice that night, this is the {which})"
        if skipped := _skipped_before(local):
            return f"{text} ({tz}; {skipped} do not exist that night, it goes at {local:%H:%M})"
        return f"{text} ({tz})"
    if rule.kind is RuleKind.interval:
        if rule.every_seconds is None or rule.start is None:
            raise ValueError("an interval rule needs `every_seconds` and `start`")
        every = rule.every_seconds
        if every % 3600 == 0:
            words = _plural(every // 3600, "hour")
        elif every % 60 == 0:
            words = _plural(every // 60, "minute")
        else:
            words = _plural(every, "second")
        first = (rule.start + timedelta(seconds=every)).astimezone(_zone(tz))
        return f"{words}, first on {_day_words(first)} at {_clock_words(first)} ({tz})"
    if rule.cron is None:
        raise ValueError("a cron rule needs `cron`")
    words, note = _describe_cron(parse_cron(rule.cron))
    return f"{words} ({tz}; {note})" if note else f"{words} ({tz})"


def _skipped_before(local: datetime) -> str:
    """`02:00-02:59` when the clocks jumped forward to aware `local` from 02:00, else ""."""
    before = (local.astimezone(UTC) - timedelta(seconds=1)).astimezone(local.tzinfo)
    jump = local.replace(tzinfo=None) - before.replace(tzinfo=None) - timedelta(seconds=1)
    if jump <= timedelta(0):
        return ""
    first = before.replace(tzinfo=None) + timedelta(seconds=1)
    return f"{first:%H:%M}-{local.replace(tzinfo=None) - timedelta(minutes=1):%H:%M}"


def _describe_cron(cron: CronSchedule) -> tuple[str, str]:
    """Words for `cron` and a note to add beside the zone (or "")."""
    fields = cron.expression.split(" ")
    one_clock = len(cron.minutes) == 1 and len(cron.hours) == 1
    at = f"at {min(cron.hours):02}:{min(cron.minutes):02}"
    # Which day field alone decides (`*/2` in the other would AND, which words do not say).
    weekdays_decide = not cron.days_restricted and cron.days == frozenset(range(1, 32))
    days_decide = not cron.weekdays_restricted and cron.weekdays == frozenset(range(7))
    if one_clock and len(cron.months) == 1 and len(cron.days) == 1 and days_decide:
        day, month = min(cron.days), min(cron.months)
        note = "only in leap years" if (day, month) == (29, 2) else ""
        return f"every year on {day} {_MONTH_NAMES[month - 1]} {at}", note
    simple_clock = one_clock and fields[3] == "*"
    if not simple_clock:
        return f"cron {cron.expression}", ""
    if weekdays_decide:
        if cron.weekdays == frozenset(range(7)):
            return f"every day {at}", ""
        if cron.weekdays == frozenset(range(1, 6)):
            return f"every weekday {at}", ""
        names = [_DAY_NAMES[(n - 1) % 7] for n in sorted(cron.weekdays, key=lambda n: (n - 1) % 7)]
        return f"every {_join_words(names)} {at}", ""
    if days_decide and len(cron.days) == 1:
        day = min(cron.days)
        note = f"months without a {_ordinal(day)} are skipped" if day > 28 else ""
        return f"every month on the {_ordinal(day)} {at}", note
    return f"cron {cron.expression}", ""


# --- ends ------------------------------------------------------------------------------------

# A recurring rule may end: `until 31.12.2026` (through the end of that local day), `5 times`
# (the 5th occurrence's instant, computed once, so exact across DST and restarts) or `for 4
# weeks` (local wall time from the first occurrence: 09:00 stays 09:00 across a change).
MOST_TIMES = 1000
# How many occurrences of an `until` rule `occurrences_left` counts at most: a card says "more
# than 100 left" rather than walk years of fire times for each card of /list.
MOST_LEFT_COUNTED = 100
LONGEST_END_YEARS = 10
_NUMBER = rf"\d+|an?|{_alternatives(_NUMBER_WORDS)}"
_END = re.compile(
    rf"(?P<rule>.+?)[, ](?:(?:until|till) (?P<until>.+)|(?P<times>{_NUMBER}) times?"
    rf"|(?P<twice>twice)|for (?P<count>{_NUMBER}) (?P<unit>[a-z]+))"
)
# An end clause's units: exact durations, and calendar ones counted on the local clock.
_END_SECONDS = {
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
}
_END_DAYS = {
    **dict.fromkeys(("d", "day", "days"), 1),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), 7),
}
_END_MONTHS = {
    **dict.fromkeys(("mo", "month", "months"), 1),
    **dict.fromkeys(("y", "yr", "year", "years"), 12),
}
_LAST_MS = timedelta(milliseconds=1)  # the stores keep milliseconds: a day ends at .999
_YEARLESS_DATE = re.compile(
    rf"(?:(?:{_WD_ONE})[, ])?(?:(?P<d>\d{{1,2}}) (?P<m>{_MONTHS})"
    rf"|(?P<m2>{_MONTHS}) (?P<d2>\d{{1,2}})"
    rf"|(?P<d3>\d{{1,2}})\.(?P<m3>\d{{1,2}})\.?)"
)
_CLOCK_ALONE = re.compile(
    r"(?:at )?(?P<time>\d{1,2}:\d{2}|\d{1,2}(?::\d{2})?(?:am|pm)|noon|midnight)"
)
_DATE_THEN_TIME = re.compile(rf"(?P<date>.+?)[, ](?:at )?(?P<time>{_TIME})")


def _end_examples(typed_rule: str) -> tuple[str, str]:
    return f"{typed_rule} 5 times", f"{typed_rule} for 4 weeks"


def _number(text: str) -> int:
    return _NUMBER_WORDS.get(text) or _count(text)


def _with_end(rule: Rule, end: re.Match[str], zone: ZoneInfo, now: datetime) -> Rule:
    """`rule` ending as the matched end clause says, or InvalidWhen saying what to type."""
    typed_rule = end["rule"]
    clause = end.string[len(typed_rule) + 1 :]
    if rule.kind is RuleKind.once:
        raise _fail(
            f"'{typed_rule}' is one time, so it cannot end '{clause}': give a repeating time",
            "every day at 9:00 5 times",
            "every monday at 9:00 for 4 weeks",
        )
    first = _next_unbounded(rule, after=now)
    if first is None:  # pragma: no cover - a recurring rule that never fires is refused
        raise _fail(f"'{typed_rule}' never fires", *EXAMPLES[3:5])
    latest = _add_months(now.astimezone(zone).replace(tzinfo=None), 12 * LONGEST_END_YEARS)
    too_far = _fail(
        f"'{clause}' is too far: an end can be at most {LONGEST_END_YEARS} years ahead",
        *_end_examples(typed_rule),
    )
    if end["times"] is not None or end["twice"] is not None:
        times = 2 if end["twice"] is not None else _number(end["times"])
        if times < 1:
            raise _fail("say how many times, at least 1", *_end_examples(typed_rule))
        if times > MOST_TIMES:
            raise _fail(
                f"{times} times is too many: at most {MOST_TIMES}", *_end_examples(typed_rule)
            )
        ending = ending_after(rule, times, after=now)
        if ending.ends_at is None:  # pragma: no cover - a recurring rule fires at least once
            raise _fail(f"'{typed_rule}' never fires", *EXAMPLES[3:5])
        if ending.ends_at.astimezone(zone).replace(tzinfo=None) > latest:
            raise too_far
        return ending.model_copy(update={"times": times})
    if end["unit"] is not None:
        count, unit = _number(end["count"]), end["unit"]
        if count < 1:
            raise _fail(f"'{clause}' is no time at all", *_end_examples(typed_rule))
        # From the first occurrence's whole second (an interval starts at a fraction of one):
        # the same occurrences fall inside, and the end is always a whole second less 1 ms.
        first = first.replace(microsecond=0)
        wall = first.astimezone(zone).replace(tzinfo=None)
        count = min(count, 10**6)  # far past any accepted end, and safe to add
        if unit in _END_SECONDS:
            ends_at = first + timedelta(seconds=count * _END_SECONDS[unit]) - _LAST_MS
            end_wall = ends_at.astimezone(zone).replace(tzinfo=None)
        elif unit in _END_DAYS:
            end_wall = wall + timedelta(days=min(count * _END_DAYS[unit], 366 * 100))
        elif unit in _END_MONTHS:
            end_wall = _add_months(wall, min(count * _END_MONTHS[unit], 12 * 100))
        else:
            raise _unknown_word(unit, _end_examples(typed_rule))
        if end_wall > latest:
            raise too_far
        if unit not in _END_SECONDS:
            ends_at = resolve_local(end_wall, zone) - _LAST_MS
        return rule.model_copy(update={"ends_at": ends_at})
    ends_at = _until(end["until"], typed_rule, zone, now)
    if ends_at.astimezone(zone).replace(tzinfo=None) > latest:
        raise too_far
    if ends_at < first:
        raise _fail(
            f"it would end before its first time ({format_local(first, rule.timezone)})",
            *_end_examples(typed_rule),
        )
    return rule.model_copy(update={"ends_at": ends_at})


def _until(text: str, typed_rule: str, zone: ZoneInfo, now: datetime) -> datetime:
    """The last instant `until TEXT` allows: the end of that local day, the time given, or
    a time alone at its next coming (`every 15 minutes until 18:00`)."""
    today = now.astimezone(zone).date()
    if match := _CLOCK_ALONE.fullmatch(text):
        clock = _time_of(match["time"])
        at = resolve_local(datetime.combine(today, clock), zone)
        if at <= now:
            at = resolve_local(datetime.combine(today + timedelta(days=1), clock), zone)
        return at
    day = _end_date(text, today)
    if day is not None:
        return (
            resolve_local(datetime.combine(day + timedelta(days=1), time(0, 0)), zone) - _LAST_MS
        )
    if (match := _DATE_THEN_TIME.fullmatch(text)) and (day := _end_date(match["date"], today)):
        return resolve_local(datetime.combine(day, _time_of(match["time"])), zone)
    ahead = today + timedelta(days=30)
    raise _fail(
        f"'until {text}': say the last day",
        f"{typed_rule} until {ahead:%d.%m.%Y}",
        f"{typed_rule} until {ahead.day} {_MONTH_ABBR[ahead.month - 1].lower()}",
    )


def _end_date(text: str, today: date) -> date | None:
    """The date `text` names (`31.12.2026`, `2026-12-31`, `31 dec`, `friday`), None if none;
    a date without a year is the next such day (today included)."""
    if re.fullmatch(_DATE, text):
        return _date_of(text, today)
    match = _YEARLESS_DATE.fullmatch(text)
    if match is None:
        return None
    if match["m3"] is not None:
        day, month = int(match["d3"]), int(match["m3"])
    else:
        day, month = int(match["d"] or match["d2"]), _MONTH_WORDS[match["m"] or match["m2"]]
    if not 1 <= month <= 12 or not 1 <= day <= _MONTH_MAX_DAYS[month - 1]:
        raise _fail(f"'{text}' is not a date", f"until {today:%d.%m.%Y}")
    for year in range(today.year, today.year + 9):  # 29 Feb comes within 8 years
        with contextlib.suppress(ValueError):
            found = date(year, month, day)
            if found >= today:
                return found
    raise _fail(f"'{text}' is not a date", f"until {today:%d.%m.%Y}")  # pragma: no cover


def _add_months(wall: datetime, months: int) -> datetime:
    """`wall` that many calendar months later, on the same day or the month's last one."""
    index = wall.year * 12 + wall.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    if year > _LAST_YEAR:
        return datetime(_LAST_YEAR, 12, 31, 23, 59)
    length = (date(year + month // 12, month % 12 + 1, 1) - date(year, month, 1)).days
    return wall.replace(year=year, month=month, day=min(wall.day, length))


def _describe_end(rule: Rule) -> str:
    """`, 5 times`, `, until Thu 31 Dec 2026` or `, ends before Mon 4 Jan 2027 09:00`; ""
    for a rule that does not end."""
    if rule.times is not None:
        return f", {rule.times} time{'s' if rule.times != 1 else ''}"
    if rule.ends_at is None:
        return ""
    return f", {end_words(rule)}"


def end_words(rule: Rule, *, year: bool = True) -> str:
    """When `rule` ends, in words: `until Thu 31 Dec 2026` (through that day), `until Thu 31
    Dec 2026 18:00`, or `ends before Mon 4 Jan 2027 09:00` (a `for 4 weeks` end)."""
    if rule.ends_at is None:
        return ""
    zone = _zone(rule.timezone)
    last = _require_aware(rule.ends_at, "rule.ends_at").astimezone(zone)
    after = (rule.ends_at + _LAST_MS).astimezone(zone)

    def day(local: datetime) -> str:
        words = _day_words(local)
        return words if year else words.rsplit(" ", 1)[0]

    if after.time() == time(0, 0) and last.date() != after.date():
        return f"until {day(last)}"
    if last.microsecond // 1000 == 999:
        return f"ends before {day(after)} {_clock_words(after)}"
    return f"until {day(last)} {_clock_words(last)}"


def occurrences_left(rule: Rule, next_run_at: datetime | None) -> int | None:
    """How many occurrences a rule that ends has left from `next_run_at` (included); None for
    one that does not end. A `5 times` rule's count is exact (it has at most `MOST_TIMES`);
    an `until` rule's is counted up to `MOST_LEFT_COUNTED` + 1, which means "more than
    `MOST_LEFT_COUNTED`"."""
    if rule.ends_at is None:
        return None
    if next_run_at is None or next_run_at > rule.ends_at:
        return 0
    most = MOST_TIMES if rule.times is not None else MOST_LEFT_COUNTED
    return 1 + len(next_fire_times(rule, after=next_run_at, count=most))


def ending_after(rule: Rule, count: int, *, after: datetime) -> Rule:
    """`rule` ending at its `count`-th occurrence after `after` (its own end ignored), or at
    its last when it does not fire that often."""
    unbounded = rule.model_copy(update={"ends_at": None})
    fires = next_fire_times(unbounded, after=after, count=count)
    return rule.model_copy(update={"ends_at": fires[-1] if fires else rule.ends_at})
