"""Discovery: what endpoint agents report becomes CIs, relationships and history. Tenant plane.

Called by ``modules.monitoring.ingest.reports_apply`` inside the tenant and the caller's transaction
(docs/decisions/0018-agent-gateway.md, "Layout"; the rules are in 0019-monitoring-and-discovery.md):

- every agent has one computer CI (class ``computer`` when discovery creates it; a person may reclassify
  it), ``external_ref`` ``agent:<agent id>``, named after the host. Any report creates it (with just the
  host name until the first inventory);
- an inventory sets the computer's discovered attributes (DISCOVERED_ATTRIBUTES; attributes a person
  entered, such as the serial number, stay), one software CI per (name, version) in the tenant
  (``software:<name>@<version>``) *installed on* the computer, and, when the agent's enrolment token
  named a site, a site CI (``site:<name>``) that *contains* the computer. Software no longer reported
  loses its relationship (the software CI stays: other computers may have it, and it keeps its history);
- what changed is one ``ci.discovered`` entry on the computer (source ``discovery``): changed attributes
  old -> new, software added and removed as a count with up to SOFTWARE_NAMES_IN_HISTORY names;
- an inventory equal to the last one applied (same fingerprint) writes nothing but the state row's
  ``last_inventory_at``; an inventory older than the last one applied is ignored.

Everything is bulk: a batch costs a handful of queries whatever the number of software rows
(existing CIs read by ``external_ref`` in chunks, new CIs, relationships, history entries and search
documents inserted in one statement each). CIs are created here without ``services.ci_create`` for that
reason; the rows written are the same (number, history entry, search document).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from modules.records.actor import Actor
from modules.records.models import ActivityEntry, uuid7
from modules.records.services import number_block, search_document_set_many

from .classes import class_attributes
from .models import (
    CIClass,
    CIRelationship,
    ConfigurationItem,
    DiscoveryState,
    Lifecycle,
    RelType,
    impact_direction,
)

RECORD_TYPE = "ci"
SOURCE = "discovery"
SOFTWARE_NAMES_IN_HISTORY = 20
CHUNK = 1000  # ids or references per IN (...) query
# The computer attributes discovery owns: written from each inventory, removed when no longer reported.
DISCOVERED_ATTRIBUTES = (
    "os",
    "os_version",
    "kernel",
    "architecture",
    "cpu_model",
    "cpu_cores",
    "cpu_count",
    "memory_mb",
    "ip_address",
    "boot_time",
    "disks",
    "network",
    "usb",
    "users",
)


@dataclass(frozen=True)
class Device:
    """An agent as any report names it: its id, enrolled host name and site ("" for none)."""

    agent_id: uuid.UUID
    hostname: str
    site: str = ""


@dataclass(frozen=True)
class Inventory:
    """One inventory report: ``data`` valid against agent_gateway/schemas/inventory.json;
    ``collected_at`` aware UTC."""

    agent_id: uuid.UUID
    hostname: str
    site: str
    collected_at: dt.datetime
    data: dict[str, Any]


def agent_ref(agent_id: uuid.UUID) -> str:
    return f"agent:{agent_id}"


def _ref(prefix: str, key: str) -> str:
    """``<prefix>:<key>``, or ``<prefix>:sha256:<hex>`` when that would not fit ``external_ref``."""
    ref = f"{prefix}:{key}"
    if len(ref) <= 200:
        return ref
    return f"{prefix}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def software_ref(name: str, version: str) -> str:
    """``software:<name>@<version>``, the name's ``%`` and ``@`` escaped (``%25``, ``%40``) so that no two
    (name, version) pairs share a reference."""
    return _ref("software", f"{name.replace('%', '%25').replace('@', '%40')}@{version}")


def site_ref(name: str) -> str:
    return _ref("site", name)


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _by_ref(refs: Iterable[str]) -> dict[str, ConfigurationItem]:
    wanted = sorted(set(refs))
    found: dict[str, ConfigurationItem] = {}
    for part in _chunks(wanted):
        for ci in ConfigurationItem.objects.filter(external_ref__in=part):
            found[ci.external_ref or ""] = ci
    return found


def _entry(ci_id: uuid.UUID, verb: str, changes: dict[str, Any], now: dt.datetime) -> ActivityEntry:
    actor = Actor.system(source=SOURCE)
    return ActivityEntry(
        record_type=RECORD_TYPE,
        record_id=ci_id,
        verb=verb,
        at=now,
        actor_user_id=actor.user_id,
        actor_person=None,
        source=actor.source,
        changes=changes,
    )


def _cis_create(
    specs: Sequence[tuple[str, str, str, dict[str, Any]]], *, now: dt.datetime
) -> dict[str, ConfigurationItem]:
    """Create CIs from ``(external_ref, name, ci_class, attributes)`` in bulk: numbers, rows, their
    ``ci.created`` entries and search documents. Returns external_ref -> CI."""
    if not specs:
        return {}
    numbers = number_block(prefix="CI", count=len(specs))
    cis = [
        ConfigurationItem(
            id=uuid7(),
            number=number,
            name=name[:200],
            ci_class=ci_class,
            lifecycle=Lifecycle.OPERATIONAL,
            attributes=attributes,
            external_ref=ref,
            created_at=now,
        )
        for number, (ref, name, ci_class, attributes) in zip(numbers, specs, strict=True)
    ]
    ConfigurationItem.objects.bulk_create(cis)
    entries = []
    for ci in cis:
        changes: dict[str, Any] = {
            "name": [None, ci.name],
            "ci_class": [None, ci.ci_class],
            "lifecycle": [None, ci.lifecycle],
        }
        changes.update({f"attributes.{key}": [None, value] for key, value in ci.attributes.items()})
        entries.append(_entry(ci.pk, "ci.created", changes, now))
    ActivityEntry.objects.bulk_create(entries)
    search_document_set_many(
        record_type=RECORD_TYPE,
        rows=[(ci.pk, ci.number, ci.name, _search_body(ci), ci.lifecycle) for ci in cis],
    )
    return {ci.external_ref or "": ci for ci in cis}


def _search_body(ci: ConfigurationItem) -> str:
    return "\n".join([ci.description, *(str(v) for v in ci.attributes.values())])


def _relationships_create(triples: Iterable[tuple[uuid.UUID, uuid.UUID, str]]) -> None:
    """Insert ``(source id, target id, rel_type)`` relationships in bulk; existing ones are kept."""
    rows = []
    for source_id, target_id, rel_type in triples:
        impact_from, impact_to = impact_direction(source_id, target_id, rel_type)
        rows.append(
            CIRelationship(
                source_id=source_id,
                target_id=target_id,
                rel_type=rel_type,
                impact_from_id=impact_from,
                impact_to_id=impact_to,
            )
        )
    for part in _chunks(rows):
        CIRelationship.objects.bulk_create(part, ignore_conflicts=True)


def _sites_link(links: dict[uuid.UUID, str], *, now: dt.datetime) -> dict[uuid.UUID, tuple[str, str]]:
    """Make the site CI named in ``links`` (computer CI id -> site name, "" for none) *contain* each
    computer, replacing any other site CI that discovery made contain it. Returns computer id -> (old
    site names, new site name) for the computers whose site changed."""
    if not links:
        return {}
    names = {name for name in links.values() if name}
    sites = _by_ref(site_ref(n) for n in names)
    missing: list[tuple[str, str, str, dict[str, Any]]] = [
        (site_ref(n), n, CIClass.SITE, {}) for n in sorted(names) if site_ref(n) not in sites
    ]
    sites |= _cis_create(missing, now=now)
    current: dict[uuid.UUID, list[tuple[int, uuid.UUID, str]]] = {}
    rows = CIRelationship.objects.filter(
        target_id__in=list(links),
        rel_type=RelType.CONTAINS,
        source__external_ref__startswith="site:",
    ).values_list("id", "source_id", "target_id", "source__name")
    for rel_id, source_id, target_id, site_name in rows:
        current.setdefault(target_id, []).append((rel_id, source_id, site_name))
    stale: list[int] = []
    wanted: list[tuple[uuid.UUID, uuid.UUID, str]] = []
    changed: dict[uuid.UUID, tuple[str, str]] = {}
    for computer_id, name in links.items():
        site = sites.get(site_ref(name)) if name else None
        have = current.get(computer_id, [])
        have_ids = {source_id for _, source_id, _ in have}
        if have_ids == ({site.pk} if site is not None else set()):
            continue
        stale += [rel_id for rel_id, source_id, _ in have if site is None or source_id != site.pk]
        if site is not None and site.pk not in have_ids:
            wanted.append((site.pk, computer_id, RelType.CONTAINS))
        changed[computer_id] = (", ".join(sorted(n for _, _, n in have)), name)
    if stale:
        CIRelationship.objects.filter(id__in=stale).delete()
    _relationships_create(wanted)
    return changed


def computers_ensure(*, devices: Iterable[Device], now: dt.datetime) -> dict[uuid.UUID, ConfigurationItem]:
    """The computer CI of each agent (agent id -> CI), created (class ``computer``, named after the host,
    no attributes, inside its site when the agent has one) for agents that have none yet. Two queries
    when all exist."""
    by_agent = {d.agent_id: d for d in devices}
    found = _by_ref(agent_ref(a) for a in by_agent)
    missing = [d for a, d in by_agent.items() if agent_ref(a) not in found]
    created = _cis_create(
        [
            (agent_ref(d.agent_id), d.hostname.strip() or str(d.agent_id), CIClass.COMPUTER, {})
            for d in missing
        ],
        now=now,
    )
    found |= created
    if created:
        _sites_link({found[agent_ref(d.agent_id)].pk: d.site for d in missing if d.site}, now=now)
    return {a: found[agent_ref(a)] for a in by_agent}


def _utc_text(value: str) -> str | None:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    except OverflowError:  # a valid RFC 3339 text at the edge of the calendar (0001-01-01 with an offset)
        return None


def _first_address(network: list[dict[str, Any]]) -> str | None:
    """The first global (not loopback, not link-local) address, IPv4 before IPv6, interfaces by name."""
    candidates = []
    for interface in sorted(network, key=lambda i: i["name"]):
        for text in interface["addresses"]:
            try:
                address = ipaddress.ip_address(text.split("/")[0].split("%")[0])
            except ValueError:
                continue
            if not (address.is_loopback or address.is_link_local or address.is_unspecified):
                candidates.append(address)
    candidates.sort(key=lambda a: a.version)
    return str(candidates[0]) if candidates else None


def computer_attributes(data: dict[str, Any]) -> dict[str, Any]:
    """The discovered attributes of an inventory (DISCOVERED_ATTRIBUTES that have a value), normalised
    to the computer class's specs (texts cut to their maximum length, lists sorted so that the same
    machine always reads the same)."""
    os_, cpu = data["os"], data["cpu"]
    threads = cpu["threads"] or cpu["cores"]
    attrs: dict[str, Any] = {
        "os": os_["distribution"] or os_["name"],
        "os_version": os_["version"],
        "kernel": os_["kernel"],
        "architecture": os_["architecture"],
        "cpu_model": cpu["model"],
        "cpu_cores": cpu["cores"] or None,
        "cpu_count": min(threads, 4096) if threads else None,
        "memory_mb": min(data["memory_bytes"] >> 20, 1 << 31) or None,
        "ip_address": _first_address(data["network"]),
        "boot_time": _utc_text(data["boot_time"]),
        "disks": sorted(
            ({k: d[k] for k in ("mount", "device", "fstype", "total_bytes")} for d in data["disks"]),
            key=lambda d: (d["mount"], d["device"]),
        ),
        "network": sorted(
            (
                {"name": n["name"], "mac": n["mac"], "addresses": sorted(n["addresses"])}
                for n in data["network"]
            ),
            key=lambda n: n["name"],
        ),
        "usb": sorted(
            ({k: u[k] for k in ("vendor_id", "product_id", "name")} for u in data["usb"]),
            key=lambda u: (u["vendor_id"], u["product_id"], u["name"]),
        ),
        "users": sorted(
            ({"name": u["name"], "terminal": u["terminal"]} for u in data["users"]),
            key=lambda u: (u["name"], u["terminal"]),
        ),
    }
    specs = {spec.name: spec for spec in class_attributes(CIClass.COMPUTER)}
    cleaned = {}
    for name, value in attrs.items():
        if value is None or value == "":
            continue
        if isinstance(value, str):
            value = value.strip()[: specs[name].max_length]
        cleaned[name] = value
    return cleaned


def _software(data: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(name, version) -> vendor of an inventory's software (names stripped; first vendor wins)."""
    found: dict[tuple[str, str], str] = {}
    for row in data["software"]:
        key = (row["name"].strip() or row["name"], row["version"].strip())
        found.setdefault(key, (row.get("vendor") or "").strip())
    return found


def _fingerprint(
    hostname: str, site: str, attrs: dict[str, Any], software: dict[tuple[str, str], str]
) -> str:
    body = json.dumps(
        {"hostname": hostname, "site": site, "attributes": attrs, "software": sorted(software)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _names(keys: Iterable[tuple[str, str]]) -> str:
    """``"3: a 1.0, b 2.0, c"``, at most SOFTWARE_NAMES_IN_HISTORY names then "… and N more"."""
    ordered = sorted(keys)
    shown = [f"{name} {version}".strip() for name, version in ordered[:SOFTWARE_NAMES_IN_HISTORY]]
    more = len(ordered) - len(shown)
    return f"{len(ordered)}: " + ", ".join(shown) + (f" … and {more} more" if more else "")


def _history_value(name: str, value: Any) -> Any:
    """A list attribute in the history: its items' names (the full list is on the CI)."""
    if not isinstance(value, list):
        return value
    key = {"disks": "mount", "network": "name", "usb": "name", "users": "name"}.get(name, "name")
    return ", ".join(str(item.get(key, "")) if isinstance(item, dict) else str(item) for item in value)[:500]


def inventories_apply(*, inventories: Sequence[Inventory], now: dt.datetime) -> int:
    """Apply inventory reports (see the module's docstring). Per agent only the newest of the batch
    counts. Returns how many computers changed. Safe to run twice: the second run finds the same
    fingerprint and writes nothing."""
    newest: dict[uuid.UUID, Inventory] = {}
    for inv in inventories:
        if inv.agent_id not in newest or inv.collected_at > newest[inv.agent_id].collected_at:
            newest[inv.agent_id] = inv
    if not newest:
        return 0
    computers = computers_ensure(
        devices=[Device(i.agent_id, i.hostname, i.site) for i in newest.values()], now=now
    )
    states = {s.agent_id: s for s in DiscoveryState.objects.filter(agent_id__in=list(newest))}
    unchanged: list[uuid.UUID] = []
    changed: list[tuple[Inventory, ConfigurationItem, dict[str, Any], dict[tuple[str, str], str], str]] = []
    for agent_id, inv in newest.items():
        state = states.get(agent_id)
        if state is not None and state.last_inventory_at and inv.collected_at <= state.last_inventory_at:
            continue  # an older inventory delivered late, or this one again
        hostname = inv.data["hostname"].strip() or inv.hostname
        attrs, software = computer_attributes(inv.data), _software(inv.data)
        fingerprint = _fingerprint(hostname, inv.site, attrs, software)
        if state is not None and state.fingerprint == fingerprint:
            unchanged.append(agent_id)
            continue
        changed.append((inv, computers[agent_id], attrs, software, fingerprint))
    if unchanged:
        for agent_id in unchanged:
            states[agent_id].last_inventory_at = newest[agent_id].collected_at
        DiscoveryState.objects.bulk_update([states[a] for a in unchanged], ["last_inventory_at"])
    if not changed:
        return 0
    diffs: dict[uuid.UUID, dict[str, Any]] = {}
    # 1. The computers' names and attributes.
    updated: list[ConfigurationItem] = []
    for inv, ci, attrs, _, _ in changed:
        diff: dict[str, Any] = {}
        hostname = (inv.data["hostname"].strip() or inv.hostname)[:200]
        if ci.name != hostname:
            diff["name"] = [ci.name, hostname]
            ci.name = hostname
        allowed = {spec.name for spec in class_attributes(ci.ci_class)}
        merged = {k: v for k, v in ci.attributes.items() if k not in DISCOVERED_ATTRIBUTES}
        merged |= {k: v for k, v in attrs.items() if k in allowed}
        for key in sorted(set(ci.attributes) | set(merged)):
            old, new = ci.attributes.get(key), merged.get(key)
            if old != new:
                diff[f"attributes.{key}"] = [_history_value(key, old), _history_value(key, new)]
        if diff:
            ci.attributes = merged
            ci.updated_at = now
            updated.append(ci)
        diffs[ci.pk] = diff
    if updated:
        ConfigurationItem.objects.bulk_update(updated, ["name", "attributes", "updated_at"])
        search_document_set_many(
            record_type=RECORD_TYPE,
            rows=[(ci.pk, ci.number, ci.name, _search_body(ci), ci.lifecycle) for ci in updated],
        )
    # 2. Software CIs and their installed_on relationships.
    wanted_keys = {key: vendor for _, _, _, software, _ in changed for key, vendor in software.items()}
    software_cis = _by_ref(software_ref(*key) for key in wanted_keys)
    missing = [
        (
            software_ref(*key),
            key[0],
            CIClass.SOFTWARE,
            {k: v for k, v in (("version", key[1][:100]), ("vendor", vendor[:100])) if v},
        )
        for key, vendor in sorted(wanted_keys.items())
        if software_ref(*key) not in software_cis
    ]
    software_cis |= _cis_create(missing, now=now)
    computer_ids = [ci.pk for _, ci, _, _, _ in changed]
    installed: dict[uuid.UUID, dict[uuid.UUID, tuple[int, str, str]]] = {}
    for part in _chunks(computer_ids):
        rows = CIRelationship.objects.filter(target_id__in=part, rel_type=RelType.INSTALLED_ON).values_list(
            "id", "source_id", "target_id", "source__name", "source__attributes__version"
        )
        for rel_id, source_id, target_id, name, version in rows:
            installed.setdefault(target_id, {})[source_id] = (rel_id, name, version or "")
    to_add: list[tuple[uuid.UUID, uuid.UUID, str]] = []
    to_remove: list[int] = []
    for _, ci, _, software, _ in changed:
        have = installed.get(ci.pk, {})
        want = {software_cis[software_ref(*key)].pk: key for key in software}
        added = [key for sid, key in want.items() if sid not in have]
        removed = [(name, version) for sid, (_, name, version) in have.items() if sid not in want]
        to_add += [(sid, ci.pk, RelType.INSTALLED_ON) for sid in want if sid not in have]
        to_remove += [rel_id for sid, (rel_id, _, _) in have.items() if sid not in want]
        if added:
            diffs[ci.pk]["software_added"] = [None, _names(added)]
        if removed:
            diffs[ci.pk]["software_removed"] = [_names(removed), None]
    for part in _chunks(to_remove):
        CIRelationship.objects.filter(id__in=part).delete()
    _relationships_create(to_add)
    # 3. Sites.
    site_changes = _sites_link({ci.pk: inv.site for inv, ci, _, _, _ in changed}, now=now)
    for computer_id, (old, new) in site_changes.items():
        diffs[computer_id]["site"] = [old or None, new or None]
    # 4. History, and the state for next time.
    ActivityEntry.objects.bulk_create(
        [_entry(ci_id, "ci.discovered", diff, now) for ci_id, diff in diffs.items() if diff]
    )
    for inv, ci, _, _, fingerprint in changed:
        state = states.get(inv.agent_id)
        if state is None:
            states[inv.agent_id] = DiscoveryState(
                agent_id=inv.agent_id, ci=ci, fingerprint=fingerprint, last_inventory_at=inv.collected_at
            )
        else:
            state.fingerprint, state.last_inventory_at = fingerprint, inv.collected_at
    new_states = [states[inv.agent_id] for inv, *_ in changed if states[inv.agent_id].pk is None]
    old_states = [states[inv.agent_id] for inv, *_ in changed if states[inv.agent_id].pk is not None]
    DiscoveryState.objects.bulk_create(new_states)
    DiscoveryState.objects.bulk_update(old_states, ["fingerprint", "last_inventory_at"])
    return sum(1 for diff in diffs.values() if diff)


def discovery_state_get(*, ci: ConfigurationItem) -> DiscoveryState | None:
    """The discovery state of a computer CI (None for a CI no agent reports)."""
    return DiscoveryState.objects.filter(ci=ci).first()


__all__ = [
    "Device",
    "Inventory",
    "agent_ref",
    "computer_attributes",
    "computers_ensure",
    "discovery_state_get",
    "inventories_apply",
]
