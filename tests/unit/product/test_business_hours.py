"""Business hours (kefu_core.product.business_hours): whether a tenant is open at a moment and
when it next opens, on the tenant's wall clock, across overnight intervals, holidays, special
openings and daylight-saving changes; and what the model refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from kefu_core.product.business_hours import (
    MAX_DATES,
    MAX_INTERVALS_PER_DAY,
    BusinessHours,
    hours_status,
)
from kefu_core.product.tenants.settings import TenantSettings

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def _hours(**values: Any) -> BusinessHours:
    week = {day: [] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    return BusinessHours.model_validate({"enabled": True, "time_zone": "Asia/Shanghai",
                                         "weekly": {**week, **values.pop("weekly", {})},
                                         **values})


def _at(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)  # type: ignore[misc]


def test_default_is_open_around_the_clock_so_existing_tenants_are_unchanged() -> None:
    # GIVEN settings stored before business hours existed
    settings = TenantSettings.model_validate({"context_window": 8})
    # WHEN asked at 3 a.m. on a Sunday
    status = hours_status(settings.business_hours, _at(SHANGHAI, 2026, 11, 29, 3, 0))
    # THEN the tenant is open and nothing is said about an opening
    assert not settings.business_hours.enabled
    assert status.open and status.next_opening is None


def test_weekday_hours_open_close_and_the_next_opening_after_a_weekend() -> None:
    # GIVEN Monday to Friday 09:00-18:00 in Shanghai (2026-11-27 is a Friday)
    nine_to_six = [{"start": "09:00", "end": "18:00"}]
    hours = _hours(weekly={d: nine_to_six for d in ("mon", "tue", "wed", "thu", "fri")})
    # THEN it is open at the opening minute and closed at the closing one
    assert hours_status(hours, _at(SHANGHAI, 2026, 11, 27, 9, 0)).open
    assert hours_status(hours, _at(SHANGHAI, 2026, 11, 27, 17, 59)).open
    friday_evening = hours_status(hours, _at(SHANGHAI, 2026, 11, 27, 18, 0))
    # AND after Friday's closing it opens again on Monday at 09:00 Shanghai time
    assert not friday_evening.open
    assert friday_evening.next_opening == _at(SHANGHAI, 2026, 11, 30, 9, 0)
    assert friday_evening.time_zone == "Asia/Shanghai"
    # AND the moment is the same whatever zone "now" is given in
    same = hours_status(hours, datetime(2026, 11, 27, 10, 0, tzinfo=UTC))  # 18:00 Shanghai
    assert same.next_opening == friday_evening.next_opening
    assert friday_evening.public()["next_opening"] == "2026-11-30T01:00:00+00:00"


def test_an_overnight_interval_runs_into_the_next_day() -> None:
    # GIVEN Friday 22:00-02:00 only
    hours = _hours(weekly={"fri": [{"start": "22:00", "end": "02:00"}]})
    # THEN it is open late on Friday and early on Saturday, closed at Saturday 02:00
    assert hours_status(hours, _at(SHANGHAI, 2026, 11, 27, 23, 30)).open
    assert hours_status(hours, _at(SHANGHAI, 2026, 11, 28, 1, 59)).open
    closed = hours_status(hours, _at(SHANGHAI, 2026, 11, 28, 2, 0))
    assert not closed.open and closed.next_opening == _at(SHANGHAI, 2026, 12, 4, 22, 0)


def test_twenty_four_hours_and_an_interval_ending_at_midnight() -> None:
    # GIVEN all of Saturday, and Sunday 20:00-24:00
    hours = _hours(weekly={"sat": [{"start": "00:00", "end": "24:00"}],
                           "sun": [{"start": "20:00", "end": "24:00"}]})
    # THEN Saturday is open at its first and last minute, Sunday until midnight
    assert hours_status(hours, _at(SHANGHAI, 2026, 11, 28, 0, 0)).open
    assert hours_status(hours, _at(SHANGHAI, 2026, 11, 28, 23, 59)).open
    assert hours_status(hours, _at(SHANGHAI, 2026, 11, 29, 23, 59)).open
    assert not hours_status(hours, _at(SHANGHAI, 2026, 11, 30, 0, 0)).open


def test_a_holiday_is_closed_and_a_special_date_replaces_its_weekday() -> None:
    # GIVEN weekdays 09:00-18:00, Tuesday 2026-12-01 a holiday, Saturday 2026-12-05 open 10-14
    nine_to_six = [{"start": "09:00", "end": "18:00"}]
    hours = _hours(weekly={d: nine_to_six for d in ("mon", "tue", "wed", "thu", "fri")},
                   dates=[{"date": "2026-12-05", "intervals": [{"start": "10:00", "end": "14:00"}]},
                          {"date": "2026-12-01", "intervals": []}])
    # THEN the holiday is closed all day and the next opening skips it
    holiday = hours_status(hours, _at(SHANGHAI, 2026, 12, 1, 11, 0))
    assert not holiday.open and holiday.next_opening == _at(SHANGHAI, 2026, 12, 2, 9, 0)
    # AND the special Saturday is open in its own hours, the dates kept in order
    assert hours_status(hours, _at(SHANGHAI, 2026, 12, 5, 13, 0)).open
    friday_night = hours_status(hours, _at(SHANGHAI, 2026, 12, 4, 20, 0))
    assert friday_night.next_opening == _at(SHANGHAI, 2026, 12, 5, 10, 0)
    assert [str(rule.date) for rule in hours.dates] == ["2026-12-01", "2026-12-05"]


def test_an_overnight_interval_still_runs_on_a_holiday_it_reaches() -> None:
    # GIVEN Friday 22:00-02:00 and Saturday a holiday: the interval belongs to Friday
    hours = _hours(weekly={"fri": [{"start": "22:00", "end": "02:00"}]},
                   dates=[{"date": "2026-11-28", "intervals": []}])
    assert hours_status(hours, _at(SHANGHAI, 2026, 11, 28, 1, 0)).open


def test_no_interval_at_all_is_always_closed_with_no_next_opening() -> None:
    # GIVEN hours switched on with an empty week
    hours = _hours()
    status = hours_status(hours, _at(SHANGHAI, 2026, 11, 30, 12, 0))
    # THEN the tenant is closed and no opening can be named
    assert not status.open and status.next_opening is None
    assert status.public() == {"open": False, "next_opening": None,
                               "time_zone": "Asia/Shanghai"}


def test_opening_times_follow_daylight_saving_changes() -> None:
    # GIVEN New York, every day 09:00-17:00 (clocks went back on 2026-11-01, a Sunday)
    every_day = {d: [{"start": "09:00", "end": "17:00"}]
                 for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    hours = _hours(time_zone="America/New_York", weekly=every_day)
    # WHEN closed on the Saturday evening before the change (EDT, UTC-4)
    status = hours_status(hours, _at(NEW_YORK, 2026, 10, 31, 18, 0))
    # THEN the next opening is 09:00 EST on Sunday: 14:00 UTC, 25 hours later, not 24
    assert status.next_opening == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)
    # AND 16:30 wall-clock time on the Sunday is open (8 wall-clock hours, 8 real ones)
    assert hours_status(hours, datetime(2026, 11, 1, 21, 30, tzinfo=UTC)).open


def test_a_time_skipped_by_the_clocks_going_forward_is_read_as_in_icalendar() -> None:
    # GIVEN New York opening at 02:30 on the day clocks jump from 02:00 to 03:00 (2026-03-08)
    early = [{"start": "02:30", "end": "05:00"}]
    hours = _hours(time_zone="America/New_York", dates=[{"date": "2026-03-08", "intervals": early}])
    status = hours_status(hours, _at(NEW_YORK, 2026, 3, 8, 1, 0))
    # THEN 02:30 is read with the offset before the change: 07:30 UTC, 03:30 on the new clock
    assert status.next_opening == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "localtime", "../../etc/passwd", "",
                                  "Asia/Shanghai" + "x" * 60])
def test_unknown_time_zones_are_refused(zone: str) -> None:
    with pytest.raises(ValidationError, match=r"time zone|at most 64"):
        _hours(time_zone=zone)


@pytest.mark.parametrize("interval", [
    {"start": "9:00", "end": "18:00"}, {"start": "09:00", "end": "24:01"},
    {"start": "25:00", "end": "18:00"}, {"start": "10:00", "end": "10:00"},
    {"start": "24:00", "end": "02:00"}, {"start": "09:00"},
])
def test_malformed_intervals_are_refused(interval: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        _hours(weekly={"mon": [interval]})


def test_sizes_are_limited_and_dates_are_distinct() -> None:
    one = {"start": "09:00", "end": "10:00"}
    with pytest.raises(ValidationError):
        _hours(weekly={"mon": [one] * (MAX_INTERVALS_PER_DAY + 1)})
    with pytest.raises(ValidationError):
        _hours(dates=[{"date": f"2027-01-{d:02d}"} for d in range(1, 32)] * (MAX_DATES // 31 + 1))
    with pytest.raises(ValidationError, match="once"):
        _hours(dates=[{"date": "2027-01-01"}, {"date": "2027-01-01", "intervals": [one]}])
    with pytest.raises(ValidationError):
        _hours(weekly={"someday": [one]})


def test_with_only_special_dates_the_next_one_is_found_however_far() -> None:
    # GIVEN no weekly hours, many holidays and one special opening more than a year ahead
    holidays = [{"date": f"2027-01-{d:02d}"} for d in range(1, 32)]
    hours = _hours(dates=[*holidays, {"date": "2028-03-01",
                                       "intervals": [{"start": "10:00", "end": "12:00"}]}])
    # THEN the next opening is that date
    status = hours_status(hours, _at(SHANGHAI, 2026, 12, 1, 12, 0))
    assert status.next_opening == _at(SHANGHAI, 2028, 3, 1, 10, 0)
