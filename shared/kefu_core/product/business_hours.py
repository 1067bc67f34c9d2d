"""A tenant's business hours: when human agents answer (``TenantSettings.business_hours``).

Outside them the widget says so and offers the offline-message form, and a handoff request is
accepted and queued for the next opening (:mod:`kefu_core.product.handoff.moves`): nobody is
assigned automatically until then, though an agent who is in early may take a conversation.
The assistant answers at any hour; only human handoff follows the hours.

The model:

- ``enabled`` false (the default): open around the clock, whatever else is stored;
- ``time_zone``: an IANA name (``Asia/Shanghai``); every time below is wall-clock time there;
- ``weekly``: for each weekday (``mon`` .. ``sun``) zero or more intervals ``HH:MM``-``HH:MM``;
  an interval whose end is not after its start runs overnight into the next day
  (``22:00``-``02:00``), ``24:00`` ends at midnight, ``00:00``-``24:00`` is the whole day;
- ``dates``: days that differ from the week: a date with no intervals is closed (a holiday),
  a date with intervals has those instead of its weekday's (a special opening).

An interval belongs to the day it starts: a Friday ``22:00``-``02:00`` still runs on a
Saturday that is a holiday. With ``enabled`` and no interval anywhere the tenant is always
closed (agents away until the hours are set); there is then no next opening.

Arithmetic is on the zone's wall clock, converted to UTC for every comparison, so the changes
to and from daylight saving time are honoured. As in iCalendar (RFC 5545), a wall-clock time
that does not exist that day (skipped when the clocks go forward) is read with the offset
before the change, so a 02:30 opening on that day is at 03:30; a time that happens twice
(clocks going back) is its first occurrence.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

if TYPE_CHECKING:  # connect and disconnect need none of the frame models chat.protocol builds
    from kefu_core.chat.protocol import HoursNow

__all__ = [
    "MAX_DATES",
    "MAX_INTERVALS_PER_DAY",
    "WEEKDAYS",
    "BusinessHours",
    "DateRule",
    "HoursStatus",
    "Interval",
    "hours_status",
    "valid_time_zone",
]

MAX_INTERVALS_PER_DAY = 6
MAX_DATES = 400
# How far ahead the next opening is looked for (holidays may close weeks in a row).
HORIZON_DAYS = 400
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_CLOCK = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")


@functools.cache
def _zones() -> frozenset[str]:
    # "localtime" names the machine's own zone where the system database has it: not a zone.
    return frozenset(zoneinfo.available_timezones() - {"localtime", "Factory"})


def valid_time_zone(name: str) -> str:
    """``name`` when it is an IANA time zone this deployment knows, else ``ValueError``."""
    if len(name) > 64 or name not in _zones():
        raise ValueError("unknown time zone: use an IANA name such as Asia/Shanghai")
    return name


def _clock(value: str) -> str:
    if not _CLOCK.match(value):
        raise ValueError("a time is HH:MM, 00:00 to 24:00")
    return value


Clock = Annotated[str, Field(max_length=5), AfterValidator(_clock)]


def _minutes(value: str) -> int:
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


class Interval(BaseModel):
    """Open from ``start`` to ``end`` (overnight when ``end`` is not after ``start``)."""

    start: Clock
    end: Clock

    @model_validator(mode="after")
    def _not_empty(self) -> Interval:
        if self.start == "24:00":
            raise ValueError("an interval starts at 23:59 at the latest")
        if self.start == self.end:
            raise ValueError("an interval cannot start and end at the same time")
        return self

    def span(self) -> tuple[int, int]:
        """Start and end in minutes from the day's midnight (end may pass 24 h)."""
        start, end = _minutes(self.start), _minutes(self.end)
        return start, end if end > start else end + 24 * 60


Intervals = Annotated[list[Interval], Field(max_length=MAX_INTERVALS_PER_DAY)]


class DateRule(BaseModel):
    """A day unlike its weekday: closed (no intervals) or open in these intervals."""

    date: date
    intervals: Intervals = Field(default_factory=list)


def _week() -> dict[Weekday, list[Interval]]:
    nine_to_six = [Interval(start="09:00", end="18:00")]
    return {"mon": list(nine_to_six), "tue": list(nine_to_six), "wed": list(nine_to_six),
            "thu": list(nine_to_six), "fri": list(nine_to_six), "sat": [], "sun": []}


class BusinessHours(BaseModel):
    """When agents answer (see the module's docstring); off (24/7) unless ``enabled``."""

    enabled: bool = False
    time_zone: str = Field(default="Asia/Shanghai", max_length=64)
    weekly: dict[Weekday, Intervals] = Field(default_factory=_week)
    dates: list[DateRule] = Field(default_factory=list, max_length=MAX_DATES)
    _by_date: dict[date, list[Interval]] = PrivateAttr(default_factory=dict)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return valid_time_zone(value)

    @field_validator("dates")
    @classmethod
    def _distinct(cls, value: list[DateRule]) -> list[DateRule]:
        seen = [rule.date for rule in value]
        if len(set(seen)) != len(seen):
            raise ValueError("each date may be listed once")
        return sorted(value, key=lambda rule: rule.date)

    @model_validator(mode="after")
    def _index(self) -> BusinessHours:
        self._by_date = {rule.date: rule.intervals for rule in self.dates}
        return self

    def intervals_on(self, day: date) -> list[Interval]:
        """The intervals that start on ``day`` (its date rule's, else its weekday's)."""
        ruled = self._by_date.get(day)
        if ruled is not None:
            return ruled
        return self.weekly.get(WEEKDAYS[day.weekday()], [])

    def days_from(self, first: date) -> Iterator[date]:
        """The days from ``first`` on that may have intervals, in order: every day of the
        horizon, or only the special dates when no weekday has any."""
        if any(self.weekly.values()):
            return (first + timedelta(days=offset) for offset in range(HORIZON_DAYS))
        return (rule.date for rule in self.dates if rule.intervals and rule.date >= first)


class HoursStatus(BaseModel):
    """Whether agents answer at ``now``; when not, the next opening (``None``: none within
    the horizon, e.g. no hours at all) and the zone they are kept in."""

    open: bool
    next_opening: datetime | None = None
    time_zone: str | None = None

    def public(self) -> HoursNow:
        """For the widget and the consoles: ``open``, ``next_opening`` (ISO 8601, UTC) and
        ``time_zone`` (the tenant's, to name it next to the time)."""
        return {"open": self.open,
                "next_opening": self.next_opening.isoformat() if self.next_opening else None,
                "time_zone": self.time_zone}


def _utc(day: date, minutes: int, zone: zoneinfo.ZoneInfo) -> datetime:
    """The UTC moment of wall-clock ``minutes`` after ``day``'s midnight in ``zone``."""
    days, rest = divmod(minutes, 24 * 60)
    wall = datetime.combine(day + timedelta(days=days), time(rest // 60, rest % 60))
    return wall.replace(tzinfo=zone).astimezone(UTC)  # fold=0: RFC 5545's reading


def _spans(hours: BusinessHours, day: date,
           zone: zoneinfo.ZoneInfo) -> Iterator[tuple[datetime, datetime]]:
    for interval in hours.intervals_on(day):
        start, end = interval.span()
        yield _utc(day, start, zone), _utc(day, end, zone)


def hours_status(hours: BusinessHours, now: datetime) -> HoursStatus:
    """Whether ``hours`` are open at ``now`` (an aware datetime) and, if not, when they next
    open. Disabled hours are always open."""
    if not hours.enabled:
        return HoursStatus(open=True)
    zone = zoneinfo.ZoneInfo(hours.time_zone)
    now = now.astimezone(UTC)
    today = now.astimezone(zone).date()
    for day in (today - timedelta(days=1), today):  # yesterday's overnight ones may still run
        if any(start <= now < end for start, end in _spans(hours, day, zone)):
            return HoursStatus(open=True, time_zone=hours.time_zone)
    # A day's intervals all start before the next day's: the first day with an opening
    # after now has the next one.
    for day in hours.days_from(today):
        starts = [start for start, _ in _spans(hours, day, zone) if start > now]
        if starts:
            return HoursStatus(open=False, next_opening=min(starts), time_zone=hours.time_zone)
    return HoursStatus(open=False, time_zone=hours.time_zone)
