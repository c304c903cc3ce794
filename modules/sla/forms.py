"""Forms of the SLA console pages. They only parse what was posted into the services' arguments; every
domain rule (time zone, holiday country, overlapping intervals, targets, escalation actions) is the
services', and their errors are put next to the field by the views (``form_errors_apply``)."""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

import holidays
from django import forms

from controlplane.problems import NotFound
from controlplane.zones import zone_choices
from modules.cmdb import selectors as cmdb_selectors
from modules.people.models import Group, Person
from modules.records.actor import Actor

from .models import BusinessCalendar, RecordType, TimerKind
from .services import HoursSpec

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
INTERVAL = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


@functools.cache
def country_choices() -> list[tuple[str, str]]:
    """The holiday countries of the ``holidays`` package: ("GB", "GB · United Kingdom"), by code."""
    names = {}
    for class_name, code, *_ in holidays.registry.COUNTRIES.values():
        names[code] = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", class_name)
    return [("", "No public holidays")] + [(code, f"{code} · {names[code]}") for code in sorted(names)]


def subdivisions_of(country: str) -> list[str]:
    """The subdivision codes the ``holidays`` package knows for a country code (empty if unknown)."""
    return list(holidays.list_supported_countries().get(country, []))


def hours_text(start: dt.time, end: dt.time) -> str:
    """An interval as the form shows it: "09:00-17:30"; an end of 00:00 is shown as 24:00."""
    return f"{start:%H:%M}-{'24:00' if end == dt.time(0) else f'{end:%H:%M}'}"


class WeeklyHoursWidget(forms.MultiWidget):
    """Seven text inputs, Monday to Sunday, each holding that day's intervals: "09:00-12:00, 13:00-17:30"."""

    template_name = "sla/widgets/weekly_hours.html"

    def __init__(self) -> None:
        attrs = {"placeholder": "e.g. 09:00-12:00, 13:00-17:30 (empty: closed)", "size": 40}
        super().__init__([forms.TextInput(attrs=attrs) for _ in WEEKDAYS])

    def decompress(self, value: Any) -> list[str]:
        return list(value) if value else [""] * len(WEEKDAYS)

    def get_context(self, name: str, value: Any, attrs: Any) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["widget"]["days"] = list(zip(WEEKDAYS, context["widget"]["subwidgets"], strict=True))
        return context


class WeeklyHoursField(forms.MultiValueField):
    """The week's working intervals, cleaned to a list of ``HoursSpec`` (local wall-clock times; "24:00"
    becomes 00:00, the services' midnight-at-the-end). Only the text format is checked here; overlaps,
    empty intervals and a week without hours are the services' errors."""

    widget = WeeklyHoursWidget

    def __init__(self, **kwargs: Any) -> None:
        fields = [forms.CharField(required=False) for _ in WEEKDAYS]
        super().__init__(fields=fields, require_all_fields=False, required=False, **kwargs)

    def compress(self, data_list: list[str]) -> list[HoursSpec]:
        specs = []
        for weekday, text in enumerate(data_list or []):
            for part in filter(None, (p.strip() for p in (text or "").split(","))):
                match = INTERVAL.match(part)
                if match is None:
                    raise forms.ValidationError(f'{WEEKDAYS[weekday]}: "{part}" is not HH:MM-HH:MM')
                sh, sm, eh, em = (int(g) for g in match.groups())
                if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em):
                    raise forms.ValidationError(f'{WEEKDAYS[weekday]}: "{part}" is not a time of day')
                specs.append(HoursSpec(weekday, dt.time(sh, sm), dt.time(eh % 24, em)))
        return specs


class CalendarForm(forms.Form):
    name = forms.CharField(max_length=120, required=False)
    time_zone = forms.CharField(
        widget=forms.Select(choices=zone_choices()), help_text="Working hours are wall-clock times here."
    )
    holiday_country = forms.CharField(
        required=False,
        widget=forms.Select(choices=country_choices()),
        help_text="Public holidays (the holidays package) are closed days.",
    )
    holiday_subdivision = forms.CharField(
        max_length=10,
        required=False,
        widget=forms.TextInput(attrs={"list": "subdivisions"}),
        help_text="A region of the country, e.g. ENG or SCT for GB (empty: national holidays only).",
    )
    working_hours = WeeklyHoursField()

    @staticmethod
    def initial_from(calendar: BusinessCalendar) -> dict[str, Any]:
        days: list[list[str]] = [[] for _ in WEEKDAYS]
        for hours in calendar.hours.all():
            days[hours.weekday].append(hours_text(hours.start, hours.end))
        return {
            "name": calendar.name,
            "time_zone": calendar.time_zone,
            "holiday_country": calendar.holiday_country,
            "holiday_subdivision": calendar.holiday_subdivision,
            "working_hours": [", ".join(day) for day in days],
        }


class ClosedDayForm(forms.Form):
    """A closed day to add; its ids (``id_closed_date``) differ from the calendar form's on the same page."""

    date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    name = forms.CharField(max_length=120, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "id_closed_%s")
        super().__init__(*args, **kwargs)


class ContractForm(forms.Form):
    name = forms.CharField(max_length=160, required=False)
    starts_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    ends_on = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="Empty: open-ended."
    )
    active = forms.BooleanField(required=False, initial=True)
    calendar = forms.ModelChoiceField(queryset=BusinessCalendar.objects.none())

    def __init__(self, *args: Any, calendars: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["calendar"].queryset = calendars  # type: ignore[attr-defined]


UNITS = [("minutes", "minutes"), ("hours", "hours")]


def target_initial(minutes: int | None) -> tuple[int | None, str]:
    """A stored target (minutes) as the form shows it: whole hours in hours, anything else in minutes."""
    if minutes is not None and minutes % 60 == 0:
        return minutes // 60, "hours"
    return minutes, "minutes"


class PolicyForm(forms.Form):
    name = forms.CharField(max_length=160, required=False)
    order = forms.IntegerField(initial=100, help_text="The first matching policy (lowest order) applies.")
    record_type = forms.ChoiceField(choices=RecordType.choices)
    priorities = forms.TypedMultipleChoiceField(
        choices=[(p, f"P{p}") for p in range(1, 6)],
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Incidents only; none ticked: any priority.",
    )
    category = forms.CharField(max_length=100, required=False, help_text="Empty: any category.")
    ci_number = forms.CharField(
        max_length=20, required=False, label="Service or CI number", help_text="Empty: any CI."
    )
    response_target = forms.IntegerField(required=False, label="Response target")
    response_unit = forms.ChoiceField(
        choices=UNITS, initial="minutes", required=False, label="Response target unit"
    )
    resolution_target = forms.IntegerField(required=False, label="Resolution target")
    resolution_unit = forms.ChoiceField(
        choices=UNITS, initial="hours", required=False, label="Resolution target unit"
    )
    business_time = forms.TypedChoiceField(
        choices=[("business", "Business hours (the calendar)"), ("24x7", "Calendar time (24x7)")],
        coerce=lambda value: value == "business",
        initial="business",
        widget=forms.RadioSelect,
        label="Time counted",
    )
    calendar = forms.ModelChoiceField(
        queryset=BusinessCalendar.objects.none(),
        required=False,
        empty_label="The contract's calendar",
        label="Calendar override",
    )

    def __init__(self, *args: Any, actor: Actor, calendars: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.actor = actor
        self.fields["calendar"].queryset = calendars  # type: ignore[attr-defined]

    def clean_ci_number(self) -> Any:
        number = self.cleaned_data["ci_number"].strip()
        if not number:
            return None
        try:
            return cmdb_selectors.ci_get_by_number(actor=self.actor, number=number)
        except NotFound as exc:
            raise forms.ValidationError("No configuration item with this number.") from exc

    def service_args(self) -> dict[str, Any]:
        """The cleaned fields as ``policy_create``/``policy_update`` keywords (targets in minutes)."""
        data = dict(self.cleaned_data)
        ci = data.pop("ci_number")
        data["configuration_item_id"] = ci.pk if ci is not None else None
        for kind in ("response", "resolution"):
            value, unit = data.pop(f"{kind}_target"), data.pop(f"{kind}_unit")  # no unit: minutes
            data[f"{kind}_target_minutes"] = value * 60 if value is not None and unit == "hours" else value
        return data


class LevelForm(forms.Form):
    """One escalation level and its actions (EscalationLevel.actions)."""

    kind = forms.ChoiceField(choices=TimerKind.choices, initial=TimerKind.RESOLUTION)
    percent = forms.IntegerField(label="At % of the target")
    notify_assignee = forms.BooleanField(required=False)
    notify_group = forms.BooleanField(required=False, label="Notify the assignment group")
    notify_persons = forms.ModelMultipleChoiceField(
        queryset=Person.objects.filter(is_active=True).order_by("display_name"), required=False
    )
    notify_groups = forms.ModelMultipleChoiceField(queryset=Group.objects.order_by("name"), required=False)
    reassign_group = forms.ModelChoiceField(
        queryset=Group.objects.order_by("name"), required=False, label="Reassign to group"
    )
    reassign_person = forms.ModelChoiceField(
        queryset=Person.objects.filter(is_active=True).order_by("display_name"),
        required=False,
        label="Reassign to person",
    )
    raise_priority = forms.BooleanField(required=False, label="Raise the priority (incidents)")

    def actions(self) -> dict[str, Any]:
        """The ticked actions as EscalationLevel.actions (unset ones left out)."""
        data = self.cleaned_data
        actions: dict[str, Any] = {
            k: True for k in ("notify_assignee", "notify_group", "raise_priority") if data[k]
        }
        for key in ("notify_persons", "notify_groups"):
            if data[key]:
                actions[key] = sorted(str(x.pk) for x in data[key])
        for key in ("reassign_group", "reassign_person"):
            if data[key] is not None:
                actions[key] = str(data[key].pk)
        return actions

    @staticmethod
    def initial_from(kind: str, percent: int, actions: dict[str, Any]) -> dict[str, Any]:
        return {"kind": kind, "percent": percent, **actions}


LevelFormSet = forms.formset_factory(LevelForm, extra=1, can_delete=True)
