"""Catalog order forms as Django forms, built from an item's JSON Schema (``formschema``), for the console
and the portal alike.

One field ``var_<name>`` per property of the schema. The Django form only parses values into JSON types;
what is required and what is valid is decided by the schema on the server (``request_submit`` runs
``formschema.variables_errors``), so the browser never has the last word. Conditional fields are
described on each field for the browser (``modules/requests/static/requests/conditional.js``):

- ``always_required``: in the schema's top-level ``required`` (rendered with the ``required`` attribute);
- ``required_when``: the field is in ``then.required`` of an ``if``/``then`` (top level or in ``allOf``),
  or depends on another field through ``dependentRequired``;
- ``visible_when``: a field required only by an ``if``/``then`` (and not otherwise required) is shown
  only while its condition holds, as ServiceNow's UI policies show a variable.

A condition is a list of clauses that must all hold, ``{"field": "var_model", "in": ["developer"]}`` (the
field's value is one of these strings) or ``{"field": "var_count", "filled": true}``; a field's
``required_when``/``visible_when`` is a list of conditions of which any may hold. An ``if`` the browser
cannot evaluate (``minimum``, ``pattern`` ...) produces no condition: the field shows and the server
decides. With JavaScript off every field shows.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from django import forms

from controlplane.problems import DomainError
from modules.cmdb.selectors import ci_visible
from modules.people.models import Person
from modules.records.actor import Actor

from . import services
from .models import CatalogItem, RequestedItem

PICKER_LIMIT = 500
Condition = list[dict[str, Any]]


def schema_properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The form's fields ``(name, property schema)`` in the order to show them: by each property's
    ``x-order`` (an integer; fields without one come after), then as stored. PostgreSQL's ``jsonb``
    keeps object keys sorted by length, not as written, so a form that cares about order says so with
    ``x-order`` (an annotation JSON Schema validators ignore)."""
    properties = [(n, s) for n, s in (schema.get("properties") or {}).items() if isinstance(s, dict)]
    last = len(properties)

    def position(entry: tuple[int, tuple[str, dict[str, Any]]]) -> tuple[int, int]:
        index, (_, spec) = entry
        order = spec.get("x-order")
        return (order if isinstance(order, int) and not isinstance(order, bool) else last + index, index)

    return [prop for _, prop in sorted(enumerate(properties), key=position)]


def _js_value(value: Any) -> str:
    """A schema constant as the string a form control's value holds (``true`` for a checked box)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _condition_of(if_schema: Any) -> Condition | None:
    """The clauses of an ``if`` schema the browser can check, or None when it cannot check it whole.

    Understood: ``{"properties": {name: {"const": v} | {"enum": [...]}}, "required": [...]}``; a name
    in ``required`` without a property test only needs a value."""
    if not isinstance(if_schema, dict) or set(if_schema) - {"properties", "required"}:
        return None
    clauses: Condition = []
    tests = if_schema.get("properties") or {}
    for name, test in tests.items():
        if not isinstance(test, dict) or len(test) != 1:
            return None
        if "const" in test:
            clauses.append({"field": f"var_{name}", "in": [_js_value(test["const"])]})
        elif "enum" in test and isinstance(test["enum"], list):
            clauses.append({"field": f"var_{name}", "in": [_js_value(v) for v in test["enum"]]})
        else:
            return None
    for name in if_schema.get("required") or []:
        if name not in tests:
            clauses.append({"field": f"var_{name}", "filled": True})
    return clauses or None


def schema_conditions(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """For each property name: ``{"always_required": bool, "required_when": [...], "visible_when": [...]}``
    (the lists as the module docstring describes; empty when unconditional)."""
    properties = schema.get("properties") or {}
    always = set(schema.get("required") or [])
    out: dict[str, dict[str, Any]] = {
        name: {"always_required": name in always, "required_when": [], "visible_when": []}
        for name in properties
    }
    rules = [schema] + [s for s in schema.get("allOf") or [] if isinstance(s, dict)]
    hidden_unless: dict[str, list[Condition]] = {}
    for rule in rules:
        if "if" not in rule or not isinstance(rule.get("then"), dict):
            continue
        condition = _condition_of(rule["if"])
        for name in rule["then"].get("required") or []:
            if name not in out or condition is None:
                continue
            out[name]["required_when"].append(condition)
            hidden_unless.setdefault(name, []).append(condition)
    for trigger, dependents in (schema.get("dependentRequired") or {}).items():
        for name in dependents:
            if name in out:
                out[name]["required_when"].append([{"field": f"var_{trigger}", "filled": True}])
                hidden_unless.pop(name, None)  # also wanted on its own: keep it visible
    for name, conditions in hidden_unless.items():
        if not out[name]["always_required"]:
            out[name]["visible_when"] = conditions
    return out


def _choice_field(values: list[Any], common: dict[str, Any]) -> forms.Field:
    """A choice of the enum's values; the cleaned value is the enum's own value (an int stays an int)."""
    by_text = {_js_value(v): v for v in values}
    return forms.TypedChoiceField(
        choices=[("", "— choose —"), *((text, text) for text in by_text)],
        coerce=lambda text: by_text[text],
        empty_value="",
        **common,
    )


def _form_field(name: str, spec: dict[str, Any], actor: Actor, rules: dict[str, Any]) -> forms.Field:
    """One Django field for one property of a form schema (validation stays with the schema)."""
    label = str(spec.get("title") or name.replace("_", " ").capitalize())
    attrs: dict[str, Any] = {"required": True} if rules["always_required"] else {}
    common: dict[str, Any] = {
        "label": label,
        "help_text": str(spec.get("description", "")),
        "required": False,
    }
    kind, fmt = spec.get("type"), spec.get("format")
    field: forms.Field
    if "enum" in spec and isinstance(spec["enum"], list):
        field = _choice_field(spec["enum"], common)
    elif kind == "integer":
        field = forms.IntegerField(widget=forms.NumberInput(attrs=attrs), **common)
    elif kind == "number":
        field = forms.FloatField(widget=forms.NumberInput(attrs=attrs), **common)
    elif kind == "boolean":
        field = forms.BooleanField(**common)
    elif fmt == "date":
        field = forms.CharField(widget=forms.DateInput(attrs={"type": "date", **attrs}), **common)
    elif fmt == "person":
        people = Person.objects.filter(is_active=True).order_by("display_name", "id")[:PICKER_LIMIT]
        field = forms.ChoiceField(
            choices=[("", "— choose a person —"), *((str(p.pk), str(p)) for p in people)], **common
        )
    elif fmt == "ci":
        cis = ci_visible(actor=actor).order_by("name", "id")[:PICKER_LIMIT]
        field = forms.ChoiceField(
            choices=[("", "— choose an item —"), *((str(c.pk), f"{c.name} ({c.number})") for c in cis)],
            **common,
        )
    elif spec.get("maxLength", 0) > 200 or spec.get("x-widget") == "textarea":
        field = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, **attrs}), **common)
    else:
        field = forms.CharField(widget=forms.TextInput(attrs=attrs), **common)
    if attrs and isinstance(field.widget, forms.Select):
        field.widget.attrs.update(attrs)
    field.always_required = rules["always_required"]  # type: ignore[attr-defined]
    field.required_when = json.dumps(rules["required_when"]) if rules["required_when"] else ""  # type: ignore[attr-defined]
    field.visible_when = json.dumps(rules["visible_when"]) if rules["visible_when"] else ""  # type: ignore[attr-defined]
    return field


def order_form_class(item: CatalogItem, actor: Actor, *, on_behalf: bool | None = None) -> type[forms.Form]:
    """A Django form with one field per property of the item's schema (``var_<name>``), then quantity;
    with ``requested_for`` first when the actor may order on someone's behalf (technicians, unless
    ``on_behalf`` is False, as on the portal). Reads the directory and the CMDB for pickers (at most
    ``PICKER_LIMIT`` each; the CI picker lists only CIs the actor may see)."""
    schema = item.form_schema or {}
    rules = schema_conditions(schema)
    fields: dict[str, forms.Field] = {}
    if actor.is_technician and on_behalf is not False:
        fields["requested_for"] = forms.ModelChoiceField(
            queryset=Person.objects.filter(is_active=True), label="Requested for"
        )
    for name, spec in schema_properties(schema):
        fields[f"var_{name}"] = _form_field(name, spec, actor, rules[name])
    fields["quantity"] = forms.IntegerField(min_value=1, max_value=services.MAX_QUANTITY, initial=1)
    return type("OrderForm", (forms.Form,), fields)


def order_variables(cleaned_data: dict[str, Any]) -> dict[str, Any]:
    """The answers of a valid order form as the item's ``variables``: empty answers are left out (an
    unchecked box, an empty text), so ``required`` in the schema means "answered"."""
    return {
        key.removeprefix("var_"): value
        for key, value in cleaned_data.items()
        if key.startswith("var_") and value not in ("", None, False)
    }


def order_errors_apply(form: forms.Form, exc: DomainError) -> None:
    """Put the errors of a refused order next to their fields (``variables.<name>`` -> ``var_<name>``);
    others on the whole form."""
    for error in exc.extra.get("errors") or [{"field": None, "message": exc.detail}]:
        field = (error.get("field") or "").replace("variables.", "var_", 1)
        form.add_error(field if field in form.fields else None, error["message"])


def order_submit(*, actor: Actor, item: CatalogItem, form: forms.Form) -> Any:
    """Submit a valid order form through ``services.request_submit`` and return the new request, or None
    after putting the service's errors on the form (nothing is written then)."""
    data = form.cleaned_data
    try:
        return services.request_submit(
            actor=actor,
            requested_for=data.get("requested_for"),
            items=[{"catalog_item": item, "variables": order_variables(data), "quantity": data["quantity"]}],
        )
    except DomainError as exc:
        order_errors_apply(form, exc)
        return None


def answers_display(
    *, actor: Actor, items: Iterable[RequestedItem]
) -> dict[uuid.UUID, list[tuple[str, str]]]:
    """The answers of requested items as ``{item id: [(label, text)]}`` in the order of the item's form:
    labels from the schema's titles; persons by name, CIs by name and number (only CIs ``actor`` may see;
    others read "a configuration item"). Two queries at most for any number of items (people, CIs); the
    items need ``catalog_item`` loaded."""
    items = list(items)
    person_ids: set[str] = set()
    ci_ids: set[str] = set()
    for ritm in items:
        properties = (ritm.catalog_item.form_schema or {}).get("properties") or {}
        for name, value in (ritm.variables or {}).items():
            fmt = (properties.get(name) or {}).get("format")
            if fmt == "person":
                person_ids.add(str(value))
            elif fmt == "ci":
                ci_ids.add(str(value))
    people = (
        {str(p.pk): str(p) for p in Person.objects.filter(pk__in=_uuids(person_ids))} if person_ids else {}
    )
    cis = (
        {str(c.pk): f"{c.name} ({c.number})" for c in ci_visible(actor=actor).filter(pk__in=_uuids(ci_ids))}
        if ci_ids
        else {}
    )
    out: dict[uuid.UUID, list[tuple[str, str]]] = {}
    for ritm in items:
        schema = ritm.catalog_item.form_schema or {}
        properties = schema.get("properties") or {}
        order = {name: index for index, (name, _) in enumerate(schema_properties(schema))}
        rows = []
        for name in sorted(ritm.variables or {}, key=lambda n: (order.get(n, len(order)), n)):
            spec = properties.get(name) or {}
            value = ritm.variables[name]
            label = str(spec.get("title") or name.replace("_", " ").capitalize())
            if spec.get("format") == "person":
                text = people.get(str(value), "a person no longer in the directory")
            elif spec.get("format") == "ci":
                text = cis.get(str(value), "a configuration item")
            elif isinstance(value, bool):
                text = "yes" if value else "no"
            else:
                text = str(value)
            rows.append((label, text))
        out[ritm.pk] = rows
    return out


def _uuids(values: Iterable[str]) -> list[uuid.UUID]:
    found = []
    for value in values:
        try:
            found.append(uuid.UUID(value))
        except ValueError:
            continue
    return found
