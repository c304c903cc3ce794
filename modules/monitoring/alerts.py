"""Alert evaluation: rules -> alerts -> incidents (docs/decisions/0018-agent-gateway.md, "Alerts →
incidents"; details in 0019-monitoring-and-discovery.md). Tenant plane, called by ``ingest``.

- A metric rule (cpu, memory, disk) fires for an agent when its samples have been above the threshold
  for at least ``minutes``: the newest sample is above, and going back, every sample is above and no two
  neighbours are more than MAX_SAMPLE_GAP apart, until one at least ``minutes`` older than the newest
  (so the samples cover the window). ``service_stopped`` the same with "the service is reported
  stopped". ``offline``: last seen ``minutes`` or longer ago.
- Firing without an open alert opens one and an incident (caller none, category ``monitoring``,
  contact type Monitoring, the computer CI as its configuration item, the rule's impact and urgency),
  unless an approved change's window covers the CI now: then the alert is opened muted (it names the
  change) and no incident is made; if it still fires after the window, the incident is opened then.
- Firing with an open alert is a repeat: counted, ``last_fired_at`` moved, and a work note on the
  incident at most every NOTE_EVERY.
- Not firing with an open alert clears it: the incident is resolved with a note, unless it has an
  assignee (a technician took it over): then only a work note says it cleared.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import transaction

from controlplane.problems import DomainError
from modules.changes.selectors import change_maintenance_get
from modules.cmdb.models import ConfigurationItem
from modules.incidents.models import Incident, ResolutionCode
from modules.incidents.services import incident_comment, incident_create, incident_transition
from modules.records.actor import Actor

from .models import Alert, AlertRule, MetricSample

log = logging.getLogger(__name__)

MAX_SAMPLE_GAP = dt.timedelta(minutes=5)  # agents report every 60 s; a longer silence breaks a run
NOTE_EVERY = dt.timedelta(minutes=30)
CATEGORY = "monitoring"
# The resolution code of an incident resolved because its condition cleared: the first active one.
RESOLUTION_CODES = ("solved_remotely_permanently", "solved_permanently", "solved_remotely_workaround")


def monitoring_actor() -> Actor:
    return Actor.system(source="monitoring")


@dataclass(frozen=True)
class Verdict:
    """What one rule says about one agent now: ``firing``, ``at`` (the newest sample or now) and the
    ``detail`` written on the alert and the incident."""

    firing: bool
    at: dt.datetime
    detail: str


def _predicate(rule: AlertRule) -> Callable[[MetricSample], bool]:
    threshold = rule.threshold if rule.threshold is not None else 100.0
    if rule.kind == AlertRule.Kind.CPU:
        return lambda s: s.cpu > threshold
    if rule.kind == AlertRule.Kind.MEMORY:
        return lambda s: s.memory > threshold
    if rule.kind == AlertRule.Kind.DISK:
        return lambda s: s.disk is not None and s.disk > threshold
    return lambda s: rule.service in (s.stopped or [])


def _value(rule: AlertRule, sample: MetricSample) -> str:
    if rule.kind == AlertRule.Kind.SERVICE_STOPPED:
        return f"{rule.service} {'stopped' if rule.service in (sample.stopped or []) else 'running'}"
    value = {"cpu": sample.cpu, "memory": sample.memory, "disk": sample.disk}[rule.kind]
    return f"{rule.kind} {value:.1f}%" if value is not None else f"{rule.kind} not reported"


def held(rule: AlertRule, samples: list[MetricSample]) -> Verdict | None:
    """The verdict of a sample rule on one agent's samples (oldest first); None without samples."""
    if not samples:
        return None
    newest = samples[-1]
    ok = _predicate(rule)
    if not ok(newest):
        return Verdict(False, newest.at, _value(rule, newest))
    since = newest.at
    for earlier, later in zip(reversed(samples[:-1]), reversed(samples[1:]), strict=True):
        if not ok(earlier) or later.at - earlier.at > MAX_SAMPLE_GAP:
            break
        since = earlier.at
    window = dt.timedelta(minutes=rule.minutes)
    detail = f"{_value(rule, newest)}; {rule.describe().lower()}, since {since:%Y-%m-%d %H:%M} UTC"
    return Verdict(newest.at - since >= window, newest.at, detail)


def sample_rules_evaluate(
    *, latest: dict[uuid.UUID, dt.datetime], computers: dict[uuid.UUID, ConfigurationItem], now: dt.datetime
) -> None:
    """Evaluate the enabled cpu, memory, disk and service rules for the agents of ``latest`` (agent id ->
    its newest new sample's time), reading each agent's samples back from the newest by the longest
    rule's window (one query)."""
    kinds = (*AlertRule.METRIC_KINDS, AlertRule.Kind.SERVICE_STOPPED)
    rules = list(AlertRule.objects.filter(enabled=True, kind__in=kinds))
    if not rules or not latest:
        return
    reach = dt.timedelta(minutes=max(r.minutes for r in rules)) + MAX_SAMPLE_GAP
    by_agent: dict[uuid.UUID, list[MetricSample]] = {a: [] for a in latest}
    rows = MetricSample.objects.filter(agent_id__in=list(latest), at__gte=min(latest.values()) - reach).only(
        "agent_id", "at", "cpu", "memory", "disk", "stopped"
    )
    for sample in rows.order_by("agent_id", "at"):
        by_agent[sample.agent_id].append(sample)
    verdicts: dict[tuple[uuid.UUID, uuid.UUID], Verdict] = {}
    for agent_id, samples in by_agent.items():
        for rule in rules:
            verdict = held(rule, samples)
            if verdict is not None:
                verdicts[(rule.pk, agent_id)] = verdict
    _apply(rules=rules, verdicts=verdicts, computers=computers, now=now)


def offline_rules_evaluate(
    *,
    last_seen: dict[uuid.UUID, dt.datetime | None],
    computers_for: Callable[[Iterable[uuid.UUID]], dict[uuid.UUID, ConfigurationItem]],
    now: dt.datetime,
) -> None:
    """Evaluate the enabled offline rules for every active agent (agent id -> last seen, None: never
    seen, which never fires). Open offline alerts of agents no longer active are cleared."""
    rules = list(AlertRule.objects.filter(enabled=True, kind=AlertRule.Kind.OFFLINE))
    gone = Alert.objects.filter(state=Alert.State.OPEN, kind=AlertRule.Kind.OFFLINE).exclude(
        agent_id__in=list(last_seen)
    )
    for alert in gone.select_related("incident", "ci"):
        _clear(alert, now=now, why="the agent is no longer active")
    if not rules:
        return
    verdicts: dict[tuple[uuid.UUID, uuid.UUID], Verdict] = {}
    firing_agents: set[uuid.UUID] = set()
    for agent_id, seen in last_seen.items():
        if seen is None:
            continue
        for rule in rules:
            silent = now - seen
            firing = silent >= dt.timedelta(minutes=rule.minutes)
            detail = f"last seen {seen:%Y-%m-%d %H:%M} UTC ({int(silent.total_seconds() // 60)} minutes ago)"
            verdicts[(rule.pk, agent_id)] = Verdict(firing, now, detail)
            if firing:
                firing_agents.add(agent_id)
    # Every firing agent's CI: an agent with an open alert of one offline rule may fire another.
    computers = computers_for(firing_agents) if firing_agents else {}
    _apply(rules=rules, verdicts=verdicts, computers=computers, now=now)


def _apply(
    *,
    rules: list[AlertRule],
    verdicts: dict[tuple[uuid.UUID, uuid.UUID], Verdict],
    computers: dict[uuid.UUID, ConfigurationItem],
    now: dt.datetime,
) -> None:
    """Open, repeat or clear alerts by the verdicts ((rule id, agent id) -> verdict)."""
    by_rule = {r.pk: r for r in rules}
    agents = {agent_id for _, agent_id in verdicts}
    open_alerts: dict[tuple[uuid.UUID, uuid.UUID], Alert] = {
        (a.rule_id, a.agent_id): a  # type: ignore[misc]  # rule__in: never null here
        for a in Alert.objects.filter(state=Alert.State.OPEN, rule__in=rules, agent_id__in=list(agents))
        .select_related("incident", "ci")
        .select_for_update(of=("self",))
    }
    to_open = [key for key, v in verdicts.items() if v.firing and key not in open_alerts]
    unmuted = [a for key, a in open_alerts.items() if a.incident_id is None and verdicts.get(key)]
    ci_ids = {computers[agent_id].pk for _, agent_id in to_open if agent_id in computers}
    ci_ids |= {a.ci_id for a in unmuted}
    muted = change_maintenance_get(actor=monitoring_actor(), ci_ids=ci_ids, at=now) if ci_ids else {}
    for key in to_open:
        rule_id, agent_id = key
        ci = computers.get(agent_id)
        if ci is None:
            continue
        _open(by_rule[rule_id], agent_id, ci, verdicts[key], muted.get(ci.pk), now=now)
    for key, alert in open_alerts.items():
        verdict = verdicts.get(key)  # keys of open_alerts are (rule id, agent id) like the verdicts'

        if verdict is None:
            continue
        if verdict.firing:
            _repeat(by_rule[key[0]], alert, verdict, muted.get(alert.ci_id), now=now)
        else:
            _clear(alert, now=now, why=verdict.detail)


def _incident_open(rule: AlertRule, ci: ConfigurationItem, verdict: Verdict) -> Incident | None:
    """The incident of a firing alert, or None when the tenant's rules refuse it (logged)."""
    try:
        with transaction.atomic():
            return incident_create(
                actor=monitoring_actor(),
                short_description=f"{ci.name}: {rule.describe()}"[:160],
                description=(
                    f"Monitoring rule “{rule.name}” fired on {ci.number} {ci.name}.\n{verdict.detail}.\n"
                    "This incident is resolved automatically when the condition clears, unless someone "
                    "is assigned to it."
                ),
                category=CATEGORY,
                contact_type=Incident.ContactType.MONITORING,
                impact=rule.impact,
                urgency=rule.urgency,
                configuration_item=ci,
            )
    except DomainError:
        log.exception("monitoring could not open an incident for rule %s on %s", rule.pk, ci.number)
        return None


def _open(
    rule: AlertRule,
    agent_id: uuid.UUID,
    ci: ConfigurationItem,
    verdict: Verdict,
    muted_by: tuple[uuid.UUID, str] | None,
    *,
    now: dt.datetime,
) -> Alert:
    alert = Alert(
        rule=rule,
        rule_name=rule.name,
        kind=rule.kind,
        agent_id=agent_id,
        ci=ci,
        detail=verdict.detail[:300],
        opened_at=now,
        last_fired_at=verdict.at,
        last_noted_at=None if muted_by is not None else now,
    )
    if muted_by is not None:
        alert.muted_by_change_id, alert.muted_by_change = muted_by
    else:
        alert.incident = _incident_open(rule, ci, verdict)
    alert.save()
    return alert


def _note(incident: Incident | None, body: str) -> None:
    if incident is None:
        return
    incident.refresh_from_db()
    if incident.is_open:
        incident_comment(actor=monitoring_actor(), incident=incident, body=body, work_note=True)


def _repeat(
    rule: AlertRule,
    alert: Alert,
    verdict: Verdict,
    muted_by: tuple[uuid.UUID, str] | None,
    *,
    now: dt.datetime,
) -> None:
    alert.repeat_count += 1
    alert.last_fired_at = max(alert.last_fired_at, verdict.at)
    alert.detail = verdict.detail[:300]
    if alert.incident_id is None and alert.rule_id is not None:
        # Without an incident: muted (a change's window) or refused by the tenant's rules. The first
        # repeat after a window opens the incident at once; a refused one is tried again every NOTE_EVERY.
        if muted_by is not None:
            if not alert.muted_by_change:
                alert.muted_by_change_id, alert.muted_by_change = muted_by
            alert.last_noted_at = None
        elif alert.last_noted_at is None or now - alert.last_noted_at >= NOTE_EVERY:
            alert.incident = _incident_open(rule, alert.ci, verdict)
            alert.last_noted_at = now
    elif alert.last_noted_at is None or now - alert.last_noted_at >= NOTE_EVERY:
        _note(alert.incident, f"Monitoring: still firing ({alert.repeat_count} repeats): {verdict.detail}.")
        alert.last_noted_at = now
    alert.save()


def _clear(alert: Alert, *, now: dt.datetime, why: str) -> None:
    alert.state, alert.cleared_at = Alert.State.CLEARED, now
    alert.save(update_fields=["state", "cleared_at", "updated_at"])
    incident = alert.incident
    if incident is None:
        return
    incident.refresh_from_db()
    if not incident.is_open:
        return
    text = f"Monitoring: the condition cleared at {now:%Y-%m-%d %H:%M} UTC ({alert.rule_name}: {why})."
    code = next(
        (c for c in RESOLUTION_CODES if ResolutionCode.objects.filter(code=c, active=True).exists()),
        ResolutionCode.objects.filter(active=True).values_list("code", flat=True).first(),
    )
    if incident.assigned_to_id is not None or code is None:
        _note(incident, text + (" Left open: it is assigned." if incident.assigned_to_id else ""))
        return
    try:
        with transaction.atomic():
            incident_transition(
                actor=monitoring_actor(),
                incident=incident,
                action="resolve",
                resolution_code=code,
                resolution_notes=text,
                now=now,
            )
    except DomainError:
        log.exception("monitoring could not resolve %s", incident.number)
        _note(incident, text)
