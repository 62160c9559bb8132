"""When a schedule fires: SDK v1 recurrences and cron expressions, as slots in UTC.

A recurrence is plain data (`check_recurrence` validates it and returns the stored dict):
`frequency` (Minute, Hour, Day, Week, Month, or Cron, headrace's extension), `interval`,
`start_time` (naive, in `time_zone`), `time_zone` (SDK v1's Windows names such as
"Pacific Standard Time", or IANA names), `hours`, `minutes`, `week_days`, `time_of_day`,
`cron`; stored recurrences also keep `anchor`, the UTC time they were stored (what a
recurrence without a start time counts from). `next_slot` gives the first slot at or after
a time.

Daylight saving: Minute and Hour recurrences count elapsed time (every 2 hours is every 7,200
seconds, whatever the clocks do); Day, Week, Month and cron recurrences follow the wall
clock of their time zone (09:00 stays 09:00 across a change). A wall time skipped by a
change (02:30 on a spring-forward night) fires at the same instant an hour later on the
new clock; a repeated one (01:30 on a fall-back night) fires once, at its first occurrence.

The rules come from python-dateutil's rrule; cron expressions are turned into rrules too
(no extra dependency: croniter, the usual choice, changed hands after being declared
unmaintained in 2024, and the five-field syntax is small). Nothing here touches storage.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil import rrule

from headrace.errors import UserError

__all__ = [
    "FREQUENCIES",
    "WEEK_DAYS",
    "WINDOWS_ZONES",
    "check_recurrence",
    "describe",
    "first_slot",
    "next_slot",
    "slots_between",
    "zone_of",
]

FREQUENCIES = ("Minute", "Hour", "Day", "Week", "Month")
WEEK_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_RR_DAYS = (rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR, rrule.SA, rrule.SU)

# SDK v1's TimeZone values (Windows zone names) and the IANA zone each one means.
WINDOWS_ZONES: dict[str, str] = {
    "UTC": "UTC",
    "Coordinated Universal Time": "UTC",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Romance Standard Time": "Europe/Paris",
    "Central European Standard Time": "Europe/Warsaw",
    "E. Europe Standard Time": "Europe/Chisinau",
    "FLE Standard Time": "Europe/Kiev",
    "GTB Standard Time": "Europe/Bucharest",
    "Russian Standard Time": "Europe/Moscow",
    "Turkey Standard Time": "Europe/Istanbul",
    "Israel Standard Time": "Asia/Jerusalem",
    "Arabian Standard Time": "Asia/Dubai",
    "India Standard Time": "Asia/Kolkata",
    "China Standard Time": "Asia/Shanghai",
    "Singapore Standard Time": "Asia/Singapore",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "E. Australia Standard Time": "Australia/Brisbane",
    "New Zealand Standard Time": "Pacific/Auckland",
    "Eastern Standard Time": "America/New_York",
    "Central Standard Time": "America/Chicago",
    "Mountain Standard Time": "America/Denver",
    "US Mountain Standard Time": "America/Phoenix",
    "Pacific Standard Time": "America/Los_Angeles",
    "Alaskan Standard Time": "America/Anchorage",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Atlantic Standard Time": "America/Halifax",
    "E. South America Standard Time": "America/Sao_Paulo",
    "SA Pacific Standard Time": "America/Bogota",
    "Central America Standard Time": "America/Guatemala",
    "South Africa Standard Time": "Africa/Johannesburg",
    "Egypt Standard Time": "Africa/Cairo",
}

_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def zone_of(name: str | None) -> ZoneInfo:
    """The zone of a TimeZone value (Windows name), an IANA name, or None (UTC)."""
    if name is None or name == "":
        return ZoneInfo("UTC")
    iana = WINDOWS_ZONES.get(name, name)
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(
            f"Unknown time zone {name!r}: use a TimeZone value (TimeZone.UTC, "
            "TimeZone.PacificStandardTime, ...) or an IANA name such as 'Europe/Amsterdam'."
        ) from None


def _start_text(start_time: Any) -> str | None:
    if start_time is None:
        return None
    if isinstance(start_time, datetime):
        if start_time.tzinfo is not None:
            raise UserError(
                "ScheduleRecurrence: start_time must be a naive datetime (no tzinfo); give "
                "its zone with time_zone=TimeZone.<zone>."
            )
        return start_time.replace(microsecond=0).isoformat()
    if isinstance(start_time, str):
        try:
            parsed = datetime.strptime(start_time.strip(), "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            raise UserError(
                f"ScheduleRecurrence: start_time {start_time!r} is not 'YYYY-MM-DDThh:mm:ss' "
                "(or give a naive datetime)."
            ) from None
        return parsed.isoformat()
    raise UserError(
        f"ScheduleRecurrence: start_time must be a datetime or 'YYYY-MM-DDThh:mm:ss', got "
        f"{type(start_time).__name__}."
    )


def _int_list(name: str, values: Any, low: int, high: int) -> list[int] | None:
    if values is None:
        return None
    if isinstance(values, (int, str)) and not isinstance(values, bool):
        values = [values]
    out = []
    for v in values:
        try:
            number = int(v)
        except (TypeError, ValueError):
            raise UserError(f"ScheduleRecurrence: {name} must be integers, got {v!r}.") from None
        if isinstance(v, bool) or not low <= number <= high or str(number) != str(v).strip():
            raise UserError(
                f"ScheduleRecurrence: {name} must be integers from {low} to {high}, got {v!r}."
            )
        out.append(number)
    if not out:
        raise UserError(f"ScheduleRecurrence: {name} is empty; leave it out or give values.")
    return sorted(set(out))


def check_recurrence(
    frequency: Any,
    interval: Any,
    *,
    start_time: Any = None,
    time_zone: Any = None,
    hours: Any = None,
    minutes: Any = None,
    week_days: Any = None,
    time_of_day: Any = None,
    cron: str | None = None,
) -> dict[str, Any]:
    """The stored form of a recurrence; UserError naming the first rule it breaks."""
    zone_name = getattr(time_zone, "value", time_zone)
    if zone_name is not None and not isinstance(zone_name, str):
        raise UserError("ScheduleRecurrence: time_zone must be a TimeZone value or a zone name.")
    zone_of(zone_name)
    start = _start_text(start_time)
    if cron is not None:
        cron_rule(cron)  # raises naming what is wrong
        return {
            "frequency": "Cron",
            "interval": 1,
            "cron": " ".join(cron.split()),
            "start_time": start,
            "time_zone": zone_name,
        }
    if frequency not in FREQUENCIES:
        raise UserError(
            f"ScheduleRecurrence: frequency {frequency!r} is not valid; use one of "
            f"{', '.join(FREQUENCIES)} (or ScheduleRecurrence.from_cron for a cron expression)."
        )
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise UserError(
            f"ScheduleRecurrence: interval must be an integer of at least 1, got {interval!r}."
        )
    if (hours is not None or minutes is not None) and frequency not in ("Day", "Week"):
        raise UserError(
            "ScheduleRecurrence: hours and minutes can only be given with frequency 'Day' or "
            f"'Week', not {frequency!r}."
        )
    if week_days is not None and frequency != "Week":
        raise UserError(
            "ScheduleRecurrence: week_days can only be given with frequency 'Week', not "
            f"{frequency!r}."
        )
    if time_of_day is not None:
        if hours is not None or minutes is not None:
            raise UserError("ScheduleRecurrence: give time_of_day or hours/minutes, not both.")
        if frequency not in ("Day", "Week"):
            raise UserError(
                "ScheduleRecurrence: time_of_day can only be given with frequency 'Day' or "
                f"'Week', not {frequency!r}."
            )
        match = _HHMM.match(str(time_of_day).strip())
        if match is None:
            raise UserError(
                f"ScheduleRecurrence: time_of_day {time_of_day!r} is not 'hh:mm' (00:00-23:59)."
            )
        hours, minutes = [int(match.group(1))], [int(match.group(2))]
    days: list[str] | None = None
    if week_days is not None:
        given = [week_days] if isinstance(week_days, str) else list(week_days)
        days = []
        for day in given:
            name = str(day).strip().capitalize()
            if name not in WEEK_DAYS:
                raise UserError(
                    f"ScheduleRecurrence: week_days entry {day!r} is not a day; use "
                    f"{', '.join(WEEK_DAYS)}."
                )
            days.append(name)
        if not days:
            raise UserError("ScheduleRecurrence: week_days is empty; leave it out or name days.")
    return {
        "frequency": frequency,
        "interval": interval,
        "start_time": start,
        "time_zone": zone_name,
        "hours": _int_list("hours", hours, 0, 23),
        "minutes": _int_list("minutes", minutes, 0, 59),
        "week_days": sorted(set(days), key=WEEK_DAYS.index) if days else None,
        "time_of_day": None if time_of_day is None else str(time_of_day).strip(),
    }


# -- cron ----------------------------------------------------------------------------------
_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
_CRON_NAMES = {
    "month": {m: i + 1 for i, m in enumerate(_MONTHS)},
    "dow": {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())},
}
_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("dow", 0, 7),
)
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _cron_field(text: str, name: str, low: int, high: int) -> tuple[list[int], bool]:
    """The values of one field and whether it was restricted (not '*')."""
    names = _CRON_NAMES.get(name, {})
    label = "day of week" if name == "dow" else name

    def number(token: str) -> int:
        value = names.get(token.lower()) if token.isalpha() else None
        if value is None:
            if not token.isdigit():
                raise UserError(f"cron expression: {label} {token!r} is not a number.")
            value = int(token)
        if not low <= value <= high:
            raise UserError(f"cron expression: {label} {value} is outside {low}-{high}.")
        return value

    values: set[int] = set()
    restricted = True
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise UserError(f"cron expression: step {step_text!r} in {label} must be >= 1.")
            step = int(step_text)
        if body == "*":
            first, last = low, high
            restricted = bool(step_text) or len(text.split(",")) > 1
        elif "-" in body:
            a, _, b = body.partition("-")
            first, last = number(a), number(b)
            if first > last:
                raise UserError(f"cron expression: range {body!r} in {label} runs backwards.")
        else:
            first = number(body)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    if name == "dow":
        values = {v % 7 for v in values}
    return sorted(values), restricted


def cron_rule(
    expression: str,
) -> tuple[list[int], list[int], list[int] | None, list[int], list[int] | None]:
    """(minutes, hours, days of month or None, months, days of week (0=Sunday) or None);
    None means that day field does not restrict. Cron's rule: when both day fields are
    restricted a day matching either one counts."""
    if not isinstance(expression, str):
        raise UserError("cron expression must be text such as '0 6 * * 1-5'.")
    text = _MACROS.get(expression.strip().lower(), expression)
    fields = text.split()
    if len(fields) != 5:
        raise UserError(
            f"cron expression {expression!r} needs five fields (minute hour day-of-month "
            "month day-of-week), e.g. '0 6 * * 1-5'; it has "
            f"{len(fields)}."
        )
    parsed = [
        _cron_field(f, n, lo, hi) for f, (n, lo, hi) in zip(fields, _CRON_FIELDS, strict=True)
    ]
    (mins, _), (hrs, _), (doms, dom_r), (months, _), (dows, dow_r) = parsed
    if dom_r and not any(d <= _DAYS_IN_MONTH[m - 1] for d in doms for m in months):
        raise UserError(f"cron expression {expression!r} names a day no month of it has.")
    if dom_r and dow_r:
        return mins, hrs, doms, months, dows
    return mins, hrs, doms if dom_r else None, months, dows if dow_r else None


# -- slots ---------------------------------------------------------------------------------
def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def _anchor(recurrence: dict[str, Any], created_at: datetime) -> datetime:
    """The recurrence's start as an aware time: start_time in its zone, else creation."""
    zone = zone_of(recurrence.get("time_zone"))
    start = recurrence.get("start_time")
    if start:
        return datetime.fromisoformat(start).replace(tzinfo=zone)
    anchor = recurrence.get("anchor")  # when a recurrence without start time was stored
    since = datetime.fromisoformat(anchor) if anchor else created_at
    return since.astimezone(zone).replace(microsecond=0)


def _wall_rules(recurrence: dict[str, Any], local_start: datetime) -> rrule.rruleset:
    """The rules of a wall-clock recurrence, on naive local times from `local_start`."""
    rules = rrule.rruleset()
    if recurrence["frequency"] == "Cron":
        mins, hrs, doms, months, dows = cron_rule(recurrence["cron"])
        common = dict(
            dtstart=local_start, byhour=hrs, byminute=mins, bysecond=0, bymonth=months, cache=False
        )
        if doms is not None:
            rules.rrule(rrule.rrule(rrule.DAILY, bymonthday=doms, **common))
        if dows is not None:
            weekdays = [_RR_DAYS[(d - 1) % 7] for d in dows]
            rules.rrule(rrule.rrule(rrule.DAILY, byweekday=weekdays, **common))
        if doms is None and dows is None:
            rules.rrule(rrule.rrule(rrule.DAILY, **common))
        return rules
    frequency = recurrence["frequency"]
    freq = {"Day": rrule.DAILY, "Week": rrule.WEEKLY, "Month": rrule.MONTHLY}[frequency]
    kwargs: dict[str, Any] = {"dtstart": local_start, "interval": recurrence["interval"]}
    if recurrence.get("hours") or recurrence.get("minutes"):
        kwargs["byhour"] = recurrence.get("hours") or [local_start.hour]
        kwargs["byminute"] = recurrence.get("minutes") or [0]
        kwargs["bysecond"] = 0
    if recurrence.get("week_days"):
        kwargs["byweekday"] = [_RR_DAYS[WEEK_DAYS.index(d)] for d in recurrence["week_days"]]
    rules.rrule(rrule.rrule(freq, **kwargs))
    return rules


def _moved_start(recurrence: dict[str, Any], local_start: datetime, target: datetime) -> datetime:
    """A later start with the same slots from `target` on (whole intervals skipped), so an
    old recurrence does not iterate through years of past slots."""
    frequency = recurrence["frequency"]
    days = (target.date() - local_start.date()).days
    if frequency == "Day":
        period = recurrence["interval"]
    elif frequency == "Week":
        period = 7 * recurrence["interval"]
    else:
        return local_start
    skip = (days // period - 1) * period
    if skip <= 0:
        return local_start
    # Whole periods: a weekly rule's interval keeps counting from the same week.
    return local_start + timedelta(days=skip)


def next_slot(recurrence: dict[str, Any], at_or_after: datetime, created_at: datetime) -> datetime:
    """The first slot (UTC) at or after `at_or_after` (aware)."""
    anchor = _anchor(recurrence, created_at)
    frequency = recurrence["frequency"]
    target = max(_utc(at_or_after), _utc(anchor))
    if frequency in ("Minute", "Hour"):
        step = timedelta(minutes=recurrence["interval"]) * (60 if frequency == "Hour" else 1)
        start = _utc(anchor)
        count = -((start - target) // step)  # ceil((target - start) / step)
        return start + count * step
    zone = anchor.tzinfo
    assert zone is not None
    local_target = target.astimezone(zone).replace(tzinfo=None)
    local_start = _moved_start(recurrence, anchor.replace(tzinfo=None), local_target)
    rules = _wall_rules(recurrence, local_start)
    # A wall time maps to an instant; search from a little before, then keep the first
    # instant at or after the target (the hour a DST change moves may reorder them).
    probe = local_target - timedelta(hours=3)
    for _ in range(1000):
        found = rules.after(probe, inc=True)
        if found is None:
            break
        instant = _utc(found.replace(tzinfo=zone))
        if instant >= target:
            return instant
        probe = found + timedelta(seconds=1)
    raise UserError(f"Recurrence {describe(recurrence)} has no slot after {target.isoformat()}.")


def first_slot(recurrence: dict[str, Any], created_at: datetime, now: datetime) -> datetime:
    """When a new (or updated) recurrence first fires: at once without a start time (SDK
    v1; a cron expression waits for its first match), else its first slot at or after the
    later of start time and now."""
    if not recurrence.get("start_time") and recurrence["frequency"] != "Cron":
        return _utc(now).replace(microsecond=0)
    return next_slot(recurrence, now, created_at)


def slots_between(
    recurrence: dict[str, Any], start: datetime, end: datetime, created_at: datetime, limit: int
) -> list[datetime]:
    """Slots s with start <= s <= end, at most `limit` (the earliest)."""
    slots: list[datetime] = []
    at = start
    while len(slots) < limit:
        slot = next_slot(recurrence, at, created_at)
        if slot > end:
            break
        slots.append(slot)
        at = slot + timedelta(seconds=1)
    return slots


def describe(recurrence: dict[str, Any]) -> str:
    """A recurrence in words, for lists and messages."""
    zone = recurrence.get("time_zone") or "UTC"
    if recurrence["frequency"] == "Cron":
        return f"cron '{recurrence['cron']}' ({zone})"
    unit = recurrence["frequency"].lower()
    n = recurrence["interval"]
    text = f"every {unit}" if n == 1 else f"every {n} {unit}s"
    if recurrence.get("week_days"):
        text += " on " + ", ".join(recurrence["week_days"])
    if recurrence.get("hours") or recurrence.get("minutes"):
        hours = recurrence.get("hours") or []
        minutes = recurrence.get("minutes") or [0]
        times = [f"{h:02d}:{m:02d}" for h in hours for m in minutes]
        if times:
            text += " at " + ", ".join(times)
    if recurrence.get("start_time"):
        text += f" from {recurrence['start_time']}"
    return f"{text} ({zone})"
