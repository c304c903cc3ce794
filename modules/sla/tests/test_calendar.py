"""Business-hours arithmetic (modules/sla/calendar.py): exact seconds and UTC deadlines across weekends,
public holidays, closed days, split days, year ends and daylight-saving changes."""

from __future__ import annotations

import datetime as dt

import pytest

from modules.sla.calendar import (
    Calendar,
    CalendarError,
    business_deadline,
    business_seconds_between,
    day_intervals,
)

UTC = dt.UTC
HOUR = 3600


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def weekdays(start: int, end: int) -> list[tuple[int, int, int]]:
    return [(day, start * 60, end * 60) for day in range(5)]


def london() -> Calendar:
    return Calendar.build(
        time_zone="Europe/London",
        intervals=weekdays(9, 17),
        holiday_country="GB",
        holiday_subdivision="ENG",
    )


def new_york() -> Calendar:
    return Calendar.build(time_zone="America/New_York", intervals=weekdays(9, 17), holiday_country="US")


def test_a_weekend_adds_no_business_time() -> None:
    # Fri 2024-11-15 16:00 -> Mon 2024-11-18 10:00 London (GMT = UTC): 1 h + 1 h.
    assert business_seconds_between(london(), utc(2024, 11, 15, 16), utc(2024, 11, 18, 10)) == 2 * HOUR
    assert business_deadline(london(), utc(2024, 11, 15, 16), 2 * HOUR) == utc(2024, 11, 18, 10)


def test_a_target_used_up_at_closing_time_is_due_at_closing_time() -> None:
    assert business_deadline(london(), utc(2024, 11, 15, 16), HOUR) == utc(2024, 11, 15, 17)


def test_christmas_holidays_and_the_year_end_are_skipped() -> None:
    # Tue 2024-12-24 16:00 + 3 h: 25th and 26th are holidays (GB-ENG), 27th Fri 09-11.
    assert business_deadline(london(), utc(2024, 12, 24, 16), 3 * HOUR) == utc(2024, 12, 27, 11)
    # Tue 2024-12-31 16:00 + 2 h: 1 January 2025 is a holiday, so Thu 2 January 10:00.
    assert business_deadline(london(), utc(2024, 12, 31, 16), 2 * HOUR) == utc(2025, 1, 2, 10)
    assert business_seconds_between(london(), utc(2024, 12, 31, 16), utc(2025, 1, 2, 10)) == 2 * HOUR


def test_the_tenant_s_closed_days_count_as_holidays() -> None:
    closed = Calendar.build(
        time_zone="Europe/London", intervals=weekdays(9, 17), closed_days=[dt.date(2024, 11, 18)]
    )
    assert business_deadline(closed, utc(2024, 11, 15, 16), 2 * HOUR) == utc(2024, 11, 19, 10)


def test_split_days_count_only_their_intervals() -> None:
    split = Calendar.build(time_zone="Europe/London", intervals=[(0, 8 * 60, 12 * 60), (0, 13 * 60, 17 * 60)])
    # Monday 2024-11-18 11:00 -> 14:00 is 1 h + 1 h (lunch 12-13 excluded).
    assert business_seconds_between(split, utc(2024, 11, 18, 11), utc(2024, 11, 18, 14)) == 2 * HOUR
    assert business_deadline(split, utc(2024, 11, 18, 11), 90 * 60) == utc(2024, 11, 18, 13, 30)


def test_summer_time_is_read_in_local_wall_clock() -> None:
    # London in July is BST (UTC+1): 09:00-17:00 local is 08:00-16:00 UTC.
    assert business_deadline(london(), utc(2024, 7, 1, 7), HOUR) == utc(2024, 7, 1, 9)


def test_new_york_deadline_across_the_march_change_is_in_utc() -> None:
    # Fri 2024-03-08 16:00 EST (21:00 UTC) + 4 h: 1 h on Friday; DST starts Sun 10 March; Monday 09:00 EDT
    # is 13:00 UTC, + 3 h = 16:00 UTC (12:00 EDT). A fixed offset would say 17:00 UTC.
    start = utc(2024, 3, 8, 21)
    assert business_deadline(new_york(), start, 4 * HOUR) == utc(2024, 3, 11, 16)
    assert business_seconds_between(new_york(), start, utc(2024, 3, 11, 16)) == 4 * HOUR


def test_dst_days_keep_whole_working_days_and_shorten_or_lengthen_the_night() -> None:
    always = Calendar.build(time_zone="America/New_York", intervals=[(d, 0, 1440) for d in range(7)])
    assert business_seconds_between(always, utc(2024, 3, 10, 5), utc(2024, 3, 11, 4)) == 23 * HOUR
    assert business_seconds_between(always, utc(2024, 11, 3, 4), utc(2024, 11, 4, 5)) == 25 * HOUR
    # The 09:00-17:00 day on the spring-forward Sunday is 8 h.
    sunday = Calendar.build(time_zone="America/New_York", intervals=[(6, 9 * 60, 17 * 60)])
    assert day_intervals(sunday, dt.date(2024, 3, 10)) == [(utc(2024, 3, 10, 13), utc(2024, 3, 10, 21))]
    # An interval starting inside the gap (02:30 does not exist) starts at the end of the gap, 03:00 EDT.
    night = Calendar.build(time_zone="America/New_York", intervals=[(6, 150, 300)])
    assert day_intervals(night, dt.date(2024, 3, 10)) == [(utc(2024, 3, 10, 7), utc(2024, 3, 10, 9))]


def test_calendar_time_ignores_hours_and_zones() -> None:
    always = Calendar.twenty_four_seven()
    assert business_deadline(always, utc(2024, 3, 9, 17), 24 * HOUR) == utc(2024, 3, 10, 17)
    assert business_seconds_between(always, utc(2024, 3, 9, 17), utc(2024, 3, 10, 17)) == 24 * HOUR


def test_deadline_and_elapsed_agree_for_long_targets_and_odd_starts() -> None:
    calendars = [london(), new_york()]
    starts = [
        utc(2024, 1, 1, 0),
        utc(2024, 3, 9, 23, 59, 30),
        utc(2024, 10, 27, 0, 30),
        utc(2025, 12, 24, 16),
    ]
    amounts = [1, 59, 8 * HOUR, 8 * HOUR + 1, 40 * HOUR, 2000 * HOUR]  # 2,000 h: about a working year
    for calendar in calendars:
        for start in starts:
            for amount in amounts:
                deadline = business_deadline(calendar, start, amount)
                assert business_seconds_between(calendar, start, deadline) == amount
                assert business_seconds_between(calendar, start, deadline - dt.timedelta(seconds=1)) < amount


def test_a_working_year_ends_a_year_later() -> None:
    # 2024 has 262 weekdays; all 8 English bank holidays fall on weekdays: 254 working days of 8 h.
    year = business_seconds_between(london(), utc(2024, 1, 1), utc(2025, 1, 1))
    assert year == 254 * 8 * HOUR
    assert business_deadline(london(), utc(2024, 1, 1), year) == utc(2024, 12, 31, 17)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"holiday_country": "XX"}, "holiday_country"),
        ({"holiday_country": "GB", "holiday_subdivision": "ZZ"}, "holiday_subdivision"),
        ({"intervals": [(0, 540, 720), (0, 700, 900)]}, "working_hours"),
        ({"intervals": [(0, 600, 600)]}, "working_hours"),
        ({"intervals": []}, "working_hours"),
    ],
)
def test_bad_calendars_name_the_field(kwargs: dict, field: str) -> None:
    arguments = {"time_zone": "Europe/London", "intervals": weekdays(9, 17), **kwargs}
    with pytest.raises(CalendarError) as caught:
        Calendar.build(**arguments)
    assert caught.value.field == field
