"""Catalog order forms as JSON Schema (Draft 2020-12), checked with the ``jsonschema`` library.

A form is a schema of type ``object``; each property is one field:

- text: ``{"type": "string"}`` (``minLength``, ``maxLength``, ``pattern`` as usual);
- choice: ``{"type": "string", "enum": [...]}``;
- number: ``{"type": "number"}`` or ``{"type": "integer"}`` (``minimum``, ``maximum``);
- date: ``{"type": "string", "format": "date"}`` (RFC 3339 full-date, ``YYYY-MM-DD``);
- person: ``{"type": "string", "format": "person"}``: the id of an active person of this tenant;
- CI: ``{"type": "string", "format": "ci"}``: the id of a configuration item the orderer may see
  (``modules.cmdb.selectors.ci_get``, so an end user may name only CIs they own).

``required`` lists required fields; ``if``/``then`` and ``dependentRequired`` make fields required only
when a condition holds (ServiceNow's UI policies, expressed in the schema so the server checks them).
Formats are asserted (a FormatChecker is passed), unlike the annotation-only default of 2020-12.
"""

from __future__ import annotations

import uuid
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError, ValidationError
from referencing.exceptions import Unresolvable

from controlplane.problems import InvalidInput, NotFound
from modules.cmdb.selectors import ci_get
from modules.people.models import Person
from modules.records.actor import Actor

FORMAT_MESSAGES = {
    "date": "not a valid date (YYYY-MM-DD)",
    "person": "no such person in this tenant",
    "ci": "no such configuration item",
}


def form_schema_check(schema: Any, *, field: str = "form_schema") -> None:
    """Check that ``schema`` is a valid Draft 2020-12 schema of an object form.

    Raises InvalidInput (422) naming ``field`` with the metaschema's complaint, or when the top level is
    not ``{"type": "object", ...}``.
    """
    if not isinstance(schema, dict):
        raise InvalidInput(
            "form_schema must be a JSON object", errors=[{"field": field, "message": "must be an object"}]
        )
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        message = f"{exc.message} (at {where})" if where else exc.message
        raise InvalidInput(
            f"invalid form schema: {message}", errors=[{"field": field, "message": message}]
        ) from exc
    if _has_reference(schema):
        # A form is flat; a reference could point nowhere and only fail when someone orders.
        raise InvalidInput(
            "references ($ref) are not supported in form schemas",
            errors=[{"field": field, "message": "write the field out instead of using $ref"}],
        )
    if schema.get("type") != "object":
        raise InvalidInput(
            "a form schema is of type object",
            errors=[{"field": field, "message": 'the top level must be {"type": "object"}'}],
        )


def _format_checker(actor: Actor) -> FormatChecker:
    checker = FormatChecker(formats=["date"])

    @checker.checks("person")
    def is_person(value: object) -> bool:
        if not isinstance(value, str):
            return True  # ``type`` reports non-strings
        try:
            return Person.objects.filter(pk=uuid.UUID(value), is_active=True).exists()
        except ValueError:
            return False

    @checker.checks("ci")
    def is_ci(value: object) -> bool:
        if not isinstance(value, str):
            return True
        try:
            ci_get(actor=actor, ci_id=value)
        except NotFound:
            return False
        return True

    return checker


def _field(path: list[Any], name: str | None = None) -> str:
    return ".".join(["variables", *(str(p) for p in path), *([name] if name else [])])


def _messages(error: ValidationError, schema: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) pairs for one jsonschema error, naming the field at fault."""
    path = list(error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        return [(_field(path, p), "required") for p in error.validator_value if p not in instance]
    if error.validator == "dependentRequired" and isinstance(instance, dict):
        return [
            (_field(path, dep), f"required when {name} is given")
            for name, deps in error.validator_value.items()
            if name in instance
            for dep in deps
            if dep not in instance
        ]
    if error.validator in ("additionalProperties", "unevaluatedProperties") and isinstance(instance, dict):
        known = set(error.schema.get("properties", {})) if isinstance(error.schema, dict) else set()
        return [(_field(path, extra), "unknown field") for extra in instance if extra not in known]
    if error.validator == "format":
        return [(_field(path), FORMAT_MESSAGES.get(str(error.validator_value), error.message))]
    if error.validator == "enum":
        return [(_field(path), f"one of {', '.join(map(str, error.validator_value))}")]
    return [(_field(path), error.message)]


def _has_reference(node: Any) -> bool:
    """Whether a schema uses ``$ref`` or ``$dynamicRef`` anywhere."""
    if isinstance(node, dict):
        return any(k in ("$ref", "$dynamicRef") or _has_reference(v) for k, v in node.items())
    if isinstance(node, list):
        return any(_has_reference(v) for v in node)
    return False


def variables_errors(*, actor: Actor, schema: dict[str, Any], variables: Any) -> list[dict[str, str]]:
    """Every problem of ``variables`` (the answers of one order form) against the item's ``schema``.

    Returns ``[{"field": "variables.<name>", "message": ...}]``, one per bad field, in the order of the
    form's properties (unknown fields last); empty when the answers are valid. Reads the directory and the CMDB (for person and
    CI fields) as ``actor``; writes nothing.
    """
    if not isinstance(variables, dict):
        return [{"field": "variables", "message": "must be an object"}]
    validator = Draft202012Validator(schema, format_checker=_format_checker(actor))
    found: dict[str, str] = {}
    try:
        for error in validator.iter_errors(variables):
            for field, message in _messages(error, schema):
                found.setdefault(field, message)
    except Unresolvable as exc:  # an item saved before references were refused
        raise InvalidInput(
            "the item's form cannot be checked", errors=[{"field": "form_schema", "message": str(exc)}]
        ) from exc
    order = {name: index for index, name in enumerate(schema.get("properties") or {})}

    def form_order(field: str) -> tuple[int, str]:
        name = field.split(".")[1] if "." in field else ""
        return order.get(name, len(order)), field

    return [{"field": field, "message": found[field]} for field in sorted(found, key=form_order)]
