"""Business-hours arithmetic for SLA timers. Pure functions: no database, no Django.

A calendar (ITIL 4 service level management: "service hours"; ServiceNow's "schedules") is:

- a time zone (IANA name, read with ``zoneinfo``);
- weekly working intervals per weekday, in local wall-clock minutes after midnight (0-1440; several
  intervals a day allowed, e.g. 08:00-12:00 and 13:00-17:00; an end of 1440 is midnight at the end of
  the day);
- public holidays from the ``holidays`` package (country and optional subdivision), and the tenant's own
  closed days: on such a local date there is no working time at all;
- or "24x7" (``Calendar.twenty_four_seven()``): every second counts (calendar time).

All inputs and outputs are aware ``datetime`` values; results are UTC. Durations are whole seconds.

Daylight-saving time: each working interval of a local date is turned into two real instants (its local
start and its local end on that date), and the working time is the real time between them. So a 09:00-17:00
day is 8 h on the spring-forward and fall-back dates alike (the changes happen at night), while an interval
that contains the change is shorter (spring forward: 00:00-06:00 is 5 h in America/New_York on 10 March
2024) or longer (fall back: 6 h -> 7 h). A wall time that does not exist (inside the spring-forward gap)
is taken as the end of the gap (02:30 -> 03:00 EDT); a wall time that exists twice (inside the fall-back
fold) is taken at its first occurrence.

Speed: the walk goes a local day at a time but jumps a whole week at once when the week has no holiday,
closed day or offset change (its working time is then the weekly sum); holidays and offset-change dates are
computed once per calendar and year (cached). A one-year target takes about 52 jumps, never a minute loop.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field

import holidays

UTC = dt.UTC
DAY_MINUTES = 1440
SECOND = dt.timedelta(seconds=1)
# The walk gives up after this many days without reaching the target (a calendar with almost no hours).
HORIZON_DAYS = 366 * 20

Interval = tuple[int, int]  # (start minute, end minute) after local midnight, 0 <= start < end <= 1440


class CalendarError(ValueError):
    """A calendar that cannot be used: unknown time zone or holiday country/subdivision, bad intervals,
    or no working time at all. ``field`` names the offending part (for 422 answers)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Calendar:
    """A business-hours calendar (see the module docstring). ``hours[weekday]`` (0 = Monday .. 6 =
    Sunday) is a sorted tuple of non-overlapping intervals in local minutes. ``closed_days`` are local
    dates. Build one with ``Calendar.build`` (which validates) or ``Calendar.twenty_four_seven()``."""

    time_zone: str = "UTC"
    hours: tuple[tuple[Interval, ...], ...] = ((),) * 7
    holiday_country: str = ""
    holiday_subdivision: str = ""
    closed_days: frozenset[dt.date] = field(default_factory=frozenset)
    always_open: bool = False

    @classmethod
    def twenty_four_seven(cls) -> Calendar:
        """Calendar time: every second of every day counts (ServiceNow's "24x7" schedule)."""
        return cls(always_open=True)

    @classmethod
    def build(
        cls,
        *,
        time_zone: str,
        intervals: Iterable[tuple[int, int, int]],
        holiday_country: str = "",
        holiday_subdivision: str = "",
        closed_days: Iterable[dt.date] = (),
    ) -> Calendar:
        """A validated calendar. ``intervals``: ``(weekday 0-6, start minute, end minute)`` triples in local
        wall-clock minutes (end 1440 = midnight). Raises CalendarError naming ``time_zone``,
        ``holiday_country``, ``holiday_subdivision`` or ``working_hours`` (overlap, empty or out-of-range
        interval, unknown weekday)."""
        zone_get(time_zone)
        holidays_check(holiday_country, holiday_subdivision)
        days: list[list[Interval]] = [[] for _ in range(7)]
        for weekday, start, end in intervals:
            if weekday not in range(7):
                raise CalendarError(f"weekday {weekday} is not 0-6", field="working_hours")
            if not 0 <= start < end <= DAY_MINUTES:
                raise CalendarError(
                    f"interval {_hhmm(start)}-{_hhmm(end)} is empty or outside the day", field="working_hours"
                )
            days[weekday].append((start, end))
        for weekday, day in enumerate(days):
            day.sort()
            for (_, end_a), (start_b, end_b) in itertools.pairwise(day):
                if start_b < end_a:
                    raise CalendarError(
                        f"intervals overlap on weekday {weekday} at {_hhmm(start_b)}-{_hhmm(end_b)}",
                        field="working_hours",
                    )
        if not any(days):
            raise CalendarError("a business calendar needs working hours", field="working_hours")
        return cls(
            time_zone=time_zone,
            hours=tuple(tuple(day) for day in days),
            holiday_country=holiday_country,
            holiday_subdivision=holiday_subdivision,
            closed_days=frozenset(closed_days),
        )

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zone_get(self.time_zone)

    @functools.cached_property
    def week(self) -> dt.timedelta:
        """Working time of a week without holidays, closed days or offset changes."""
        return dt.timedelta(minutes=sum(end - start for day in self.hours for start, end in day))


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@functools.lru_cache(maxsize=512)
def zone_get(name: str) -> zoneinfo.ZoneInfo:
    """The ZoneInfo for an IANA name. Raises CalendarError(field="time_zone") for an unknown name."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise CalendarError(f"unknown time zone {name!r}", field="time_zone") from exc


def holidays_check(country: str, subdivision: str) -> None:
    """Check a holiday country (ISO 3166-1 alpha-2, e.g. ``GB``) and subdivision (e.g. ``ENG``) against the
    ``holidays`` package. Empty country = no public holidays. Raises CalendarError naming the field."""
    if not country:
        if subdivision:
            raise CalendarError("a subdivision needs a country", field="holiday_subdivision")
        return
    supported = holidays.list_supported_countries()
    if country not in supported:
        raise CalendarError(f"no public holidays known for country {country!r}", field="holiday_country")
    if subdivision and subdivision not in supported[country]:
        raise CalendarError(f"{country} has no subdivision {subdivision!r}", field="holiday_subdivision")


@functools.lru_cache(maxsize=1024)
def public_holidays(country: str, subdivision: str, year: int) -> frozenset[dt.date]:
    """The public holidays of one year (``holidays.country_holidays``), cached per country, subdivision
    and year. Empty country: none."""
    if not country:
        return frozenset()
    return frozenset(holidays.country_holidays(country, subdiv=subdivision or None, years=year).keys())


@functools.lru_cache(maxsize=1024)
def offset_change_days(time_zone: str, year: int) -> frozenset[dt.date]:
    """Local dates of ``year`` during which the zone's UTC offset changes (DST changes and rule changes),
    judged from the offsets at consecutive local midnights. Cached per zone and year."""
    zone = zone_get(time_zone)
    day = dt.date(year, 1, 1)
    previous = dt.datetime.combine(day, dt.time(), tzinfo=zone).utcoffset()
    changes = set()
    while day.year == year:
        following = day + dt.timedelta(days=1)
        offset = dt.datetime.combine(following, dt.time(), tzinfo=zone).utcoffset()
        if offset != previous:
            changes.add(day)
        previous, day = offset, following
    return frozenset(changes)


def _closed(calendar: Calendar, day: dt.date) -> bool:
    return day in calendar.closed_days or day in public_holidays(
        calendar.holiday_country, calendar.holiday_subdivision, day.year
    )


def _plain_week(calendar: Calendar, first: dt.date) -> bool:
    """Whether the 7 local days from ``first`` (and the midnight after them) hold no closed day and no
    offset change, so their working time is ``calendar.week``."""
    for offset in range(8):
        day = first + dt.timedelta(days=offset)
        if day in offset_change_days(calendar.time_zone, day.year):
            return False
        if offset < 7 and _closed(calendar, day):
            return False
    return True


def _wall_to_utc(zone: zoneinfo.ZoneInfo, wall: dt.datetime) -> dt.datetime:
    """The UTC instant of a naive local wall time: the first occurrence in a fold, the end of the gap for
    a time inside a spring-forward gap."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # Inside a gap: fold=0 read it with the offset before the change (an instant after the change), fold=1
    # with the offset after it (an instant before). The change lies between; find it to the second.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after = first.astimezone(zone).utcoffset()
    lo, hi = 0, int((first - low) // SECOND)  # the change is within (low, low + hi seconds]
    while lo < hi:
        middle = (lo + hi) // 2
        if (low + middle * SECOND).astimezone(zone).utcoffset() == after:
            hi = middle
        else:
            lo = middle + 1
    return low + lo * SECOND


def day_intervals(calendar: Calendar, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
    """The working intervals of a local date as UTC instants (empty on holidays and closed days)."""
    if _closed(calendar, day):
        return []
    zone = calendar.zone
    midnight = dt.datetime.combine(day, dt.time())
    spans = []
    for start, end in calendar.hours[day.weekday()]:
        a = _wall_to_utc(zone, midnight + dt.timedelta(minutes=start))
        b = _wall_to_utc(zone, midnight + dt.timedelta(minutes=end))
        if b > a:
            spans.append((a, b))
    return spans


def _utc(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")
    return value.astimezone(UTC)


def business_time_between(calendar: Calendar, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
    """Working time between two instants (exact, as a timedelta); zero when ``end <= start``."""
    start, end = _utc(start, "start"), _utc(end, "end")
    if end <= start:
        return dt.timedelta(0)
    if calendar.always_open:
        return end - start
    zone = calendar.zone
    day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    total = dt.timedelta(0)
    first = day
    while day <= last:
        # Whole days strictly after the start's date and before the end's date lie inside (start, end).
        if day > first and day + dt.timedelta(days=7) <= last and _plain_week(calendar, day):
            total += calendar.week
            day += dt.timedelta(days=7)
            continue
        for a, b in day_intervals(calendar, day):
            a, b = max(a, start), min(b, end)
            if b > a:
                total += b - a
        day += dt.timedelta(days=1)
    return total


def business_seconds_between(calendar: Calendar, start_utc: dt.datetime, end_utc: dt.datetime) -> int:
    """Whole seconds of working time between two aware instants (floor); 0 when ``end <= start``.

    For a 24x7 calendar this is the calendar time between them. Raises ValueError for naive datetimes.
    """
    return business_time_between(calendar, start_utc, end_utc) // SECOND


def business_deadline(calendar: Calendar, start_utc: dt.datetime, seconds: int) -> dt.datetime:
    """The UTC instant at which ``seconds`` of working time counted from ``start_utc`` are used up.

    ``seconds <= 0`` gives ``start_utc`` itself. The deadline falls inside a working interval or at its end
    (a target used up exactly at 17:00 is due at 17:00, not at the next opening). Raises CalendarError when
    the calendar has no working time within ``HORIZON_DAYS`` (e.g. no hours at all), ValueError for a naive
    ``start_utc``. Invariant: ``business_seconds_between(c, s, business_deadline(c, s, n)) == n``.
    """
    return business_deadline_after(calendar, start_utc, dt.timedelta(seconds=seconds))


def business_deadline_after(
    calendar: Calendar, start_utc: dt.datetime, duration: dt.timedelta
) -> dt.datetime:
    """``business_deadline`` for an exact duration (a timedelta, microseconds kept). UTC result."""
    start = _utc(start_utc, "start_utc")
    if duration <= dt.timedelta(0):
        return start
    remaining = duration
    if calendar.always_open:
        return start + remaining
    if calendar.week <= dt.timedelta(0):
        raise CalendarError("the calendar has no working hours", field="working_hours")
    day = first = start.astimezone(calendar.zone).date()
    horizon = first + dt.timedelta(days=HORIZON_DAYS)
    while day <= horizon:
        if day > first and remaining > calendar.week and _plain_week(calendar, day):
            remaining -= calendar.week
            day += dt.timedelta(days=7)
            continue
        for a, b in day_intervals(calendar, day):
            a = max(a, start)
            if b <= a:
                continue
            if b - a >= remaining:
                return a + remaining
            remaining -= b - a
        day += dt.timedelta(days=1)
    raise CalendarError(
        f"no deadline within {HORIZON_DAYS} days: the calendar has too little working time",
        field="working_hours",
    )
