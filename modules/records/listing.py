"""One way to do the console's record lists: sorting, pagination, common filters and saved views.

Every per-tenant list (incidents, service requests, problems, changes, CIs, knowledge articles) declares a
``ListSpec`` (its columns, which of them sort, its default sort) and calls ``listing_build`` with the
actor's filtered queryset. Everything a list shows lives in the query string, so a URL is a bookmark:

- ``sort``: a column key, ``-`` first for descending (``?sort=-opened``). Only the spec's whitelisted
  keys sort; an unknown key is ignored (the default sort applies, and the page says so) rather than
  answered with 400, so an old bookmark keeps working. The id breaks ties in the same direction, so the
  order is total and pages neither repeat nor skip rows.
- ``size``: rows a page, 25, 50 (default) or 100; ``page``: 1-based page number.
- the list's filter form's fields (``state``, ``priority``, ``assignee``, ``q``...).
- ``view``: a saved view's id; the list redirects to the view's query string.

Pagination is by offset with no COUNT(*): a page fetches ``size + 1`` ids to know whether there is a
next one, and offsets stop at ``MAX_ROWS`` (a "narrow the filters" note replaces the next link). See
docs/decisions/0013-list-pages.md for the measurements behind this choice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.db.models import F, OrderBy, QuerySet
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.utils import timezone

from controlplane.problems import NotFound

from .actor import Actor
from .models import SavedView
from .selectors import saved_view_get, saved_view_list

PAGE_SIZES = (25, 50, 100)
DEFAULT_PAGE_SIZE = 50
# Offsets stop here: past 10,000 rows a person narrows the filters rather than pages on (and an OFFSET
# of that size still answers in a few milliseconds on an index; see decision 0011).
MAX_ROWS = 10_000


@dataclass(frozen=True)
class Column:
    """One column of a list. ``key`` is its name in ``?sort=``; ``order`` the ORM path it sorts by
    (None: the column does not sort); ``descending_first``: a first click sorts newest/largest first
    (dates), otherwise A-Z / 1-5 first (text, priority)."""

    key: str
    label: str
    order: str | None = None
    descending_first: bool = False


@dataclass(frozen=True)
class ListSpec:
    """A console list: ``name`` is its saved-view list name (``SavedView.ListName``), ``target`` the id
    of the element htmx swaps (``incident-table``), ``default_sort`` a sort parameter (``-opened``)."""

    name: str
    target: str
    columns: tuple[Column, ...]
    default_sort: str

    def sortable(self) -> dict[str, str]:
        return {c.key: c.order for c in self.columns if c.order}


@dataclass(frozen=True)
class Sort:
    """The sort in force: column key, direction, and whether the requested one was ignored."""

    key: str
    descending: bool
    ignored: str = ""

    @property
    def param(self) -> str:
        return f"-{self.key}" if self.descending else self.key


def sort_parse(spec: ListSpec, raw: str | None) -> Sort:
    """The sort ``raw`` asks for (``opened``, ``-opened``) if its key is whitelisted in ``spec``; else
    the spec's default, with ``ignored`` set to the refused value (shown to the reader, never an error)."""
    default_desc = spec.default_sort.startswith("-")
    default = Sort(spec.default_sort.lstrip("-"), default_desc)
    if not raw:
        return default
    descending = raw.startswith("-")
    key = raw.lstrip("-")
    if key not in spec.sortable():
        return Sort(default.key, default.descending, ignored=raw[:40])
    return Sort(key, descending)


def sort_apply(qs: QuerySet[Any], spec: ListSpec, sort: Sort) -> QuerySet[Any]:
    """``qs`` ordered by the sort's column (nulls last in both directions), then by id in the same
    direction: a total order, so offset pages never repeat or skip a row."""
    path = spec.sortable()[sort.key]
    if not sort.descending:
        expr: OrderBy = F(path).asc()  # PostgreSQL puts nulls last when ascending
    elif _nullable(qs.model, path):
        expr = F(path).desc(nulls_last=True)
    else:
        # A NOT NULL column sorts DESC without NULLS LAST, so an index on (column, id) read backwards
        # serves the page (DESC NULLS LAST would need a full sort of every matching row).
        expr = F(path).desc()
    return qs.order_by(expr, "-id" if sort.descending else "id")


def _nullable(model: Any, path: str) -> bool:
    """Whether the ORM path (``opened_at``, ``assigned_to__display_name``) may be null: a nullable
    column or relation on the way, or anything that is not a plain field (an annotation)."""
    from django.core.exceptions import FieldDoesNotExist

    for part in path.split("__"):
        try:
            found = model._meta.get_field(part)
        except FieldDoesNotExist:
            return True
        if getattr(found, "null", True):
            return True
        model = found.related_model or model
    return False


@dataclass
class Page:
    """One page of rows. ``number`` is 1-based; ``capped`` says the next page would pass ``MAX_ROWS``
    (there are more rows, but the reader should narrow the filters). ``first`` and ``last`` are the
    1-based positions of the rows shown (0 and 0 on an empty page)."""

    rows: list[Any]
    number: int
    size: int
    has_next: bool
    capped: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def first(self) -> int:
        return (self.number - 1) * self.size + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return (self.number - 1) * self.size + len(self.rows)

    def __iter__(self) -> Any:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def page_number(raw: str | None, size: int) -> int:
    """The page asked for, clamped to 1..the last page below ``MAX_ROWS``; junk is page 1."""
    try:
        number = int(raw or 1)
    except ValueError:
        return 1
    return max(1, min(number, max(1, MAX_ROWS // size)))


def page_size(raw: str | None) -> int:
    try:
        size = int(raw or DEFAULT_PAGE_SIZE)
    except ValueError:
        return DEFAULT_PAGE_SIZE
    return size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE


def page_get(qs: QuerySet[Any], *, number: int, size: int) -> Page:
    """Rows ``(number - 1) * size`` .. ``+ size`` of the ordered ``qs``, in two queries whatever the
    page: the page's ids (``LIMIT size + 1`` tells whether another page follows; no COUNT), then those
    rows with everything ``qs`` joins (``select_related``) and annotates.

    Ids first ("late row lookup"): ordering and limiting the bare table lets PostgreSQL stop after
    ``size + 1`` rows of an index, or top-N sort a narrow row set, instead of joining every matching
    row to callers, groups and assignees before sorting (measured in docs/decisions/0013-list-pages.md).
    """
    offset = (number - 1) * size
    ids = list(qs.values_list("pk", flat=True)[offset : offset + size + 1])
    more = len(ids) > size
    ids = ids[:size]
    found = {row.pk: row for row in qs.order_by().filter(pk__in=ids)} if ids else {}
    rows = [found[pk] for pk in ids if pk in found]
    capped = more and offset + size >= MAX_ROWS
    return Page(rows=rows, number=number, size=size, has_next=more and not capped, capped=capped)


def page_slice(rows: Any, *, number: int, size: int) -> Page:
    """Rows ``(number - 1) * size`` .. ``+ size`` of an ordered queryset that cannot be fetched again by
    id (a ``union`` or ``values`` query), in one query (``LIMIT size + 1``; no COUNT), as a Page.
    ``number`` as page_number clamps it."""
    offset = (number - 1) * size
    found = list(rows[offset : offset + size + 1])
    more = len(found) > size
    capped = more and offset + size >= MAX_ROWS
    return Page(rows=found[:size], number=number, size=size, has_next=more and not capped, capped=capped)


@dataclass(frozen=True)
class Header:
    """A column header: its sort link (``query``, without ``?``) and ``aria_sort`` (ascending,
    descending, none; empty for a column that does not sort)."""

    label: str
    key: str
    query: str
    aria_sort: str

    @property
    def sortable(self) -> bool:
        return bool(self.query)


@dataclass
class Listing:
    """What a list template needs: the page, headers, links (query strings without ``?``), page sizes,
    the current query (without ``page``) for the save form, and the saved views of this list."""

    spec: ListSpec
    sort: Sort
    page: Page
    headers: list[Header]
    query: str
    previous_query: str
    next_query: str
    sizes: list[tuple[int, str, bool]]
    saved_views: list[SavedView] = field(default_factory=list)
    may_save: bool = False


def _with(base: QueryDict, **changes: Any) -> str:
    q = base.copy()
    for key, value in changes.items():
        q.pop(key, None)
        if value is not None:
            q[key] = str(value)
    return q.urlencode()


def listing_build(*, request: Any, actor: Actor, spec: ListSpec, qs: QuerySet[Any]) -> Listing:
    """Sort and page ``qs`` (already scoped to the actor and filtered) from the request's query string,
    and gather the headers, paging links and saved views. Three queries whatever the page's length: the
    page's ids, its rows (with whatever ``select_related`` ``qs`` carries) and the saved views."""
    params = request.GET.copy()
    for transient in ("page", "view"):
        params.pop(transient, None)
    sort = sort_parse(spec, params.get("sort"))
    size = page_size(params.get("size"))
    page = page_get(sort_apply(qs, spec, sort), number=page_number(request.GET.get("page"), size), size=size)
    headers = []
    for column in spec.columns:
        if not column.order:
            headers.append(Header(column.label, column.key, "", ""))
            continue
        active = column.key == sort.key
        if active:
            toggled = column.key if sort.descending else f"-{column.key}"
        else:
            toggled = f"-{column.key}" if column.descending_first else column.key
        aria = ("descending" if sort.descending else "ascending") if active else "none"
        headers.append(Header(column.label, column.key, _with(params, sort=toggled), aria))
    sizes = [(n, _with(params, size=n), n == size) for n in PAGE_SIZES]
    views = list(saved_view_list(actor=actor, list_name=spec.name))
    return Listing(
        spec=spec,
        sort=sort,
        page=page,
        headers=headers,
        query=params.urlencode(),
        previous_query=_with(params, page=page.number - 1) if page.has_previous else "",
        next_query=_with(params, page=page.number + 1) if page.has_next else "",
        sizes=sizes,
        saved_views=views,
        may_save=actor.is_technician and actor.user_id is not None,
    )


def saved_view_redirect(*, request: Any, actor: Actor, spec: ListSpec) -> HttpResponse | None:
    """For ``?view=<id>``: a redirect to the list with that saved view's query string, or Http404 for a
    view the actor may not apply (another tenant's, another technician's private one, a malformed id).
    None when no view is asked for."""
    view_id = request.GET.get("view")
    if not view_id:
        return None
    try:
        view = saved_view_get(actor=actor, view_id=view_id, list_name=spec.name)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    return redirect(f"{request.path}?{view.query}" if view.query else request.path)


# Filters shared by the lists.

ASSIGNEE_CHOICES = [
    ("", "Anyone"),
    ("me", "Assigned to me"),
    ("my_groups", "My groups"),
    ("unassigned", "Unassigned"),
]
WITHIN_CHOICES = [
    ("", "Any time"),
    ("1", "Last 24 hours"),
    ("7", "Last 7 days"),
    ("30", "Last 30 days"),
    ("90", "Last 90 days"),
]


class ListFilterForm(forms.Form):
    """Base of the lists' filter forms (GET): the free-text search every list has. Subclasses add
    their fields; ``cleaned()`` returns the valid fields only, so one bad value is reported next to its
    field without dropping the other filters."""

    q = forms.CharField(required=False, label="Search", max_length=200)

    def cleaned(self) -> dict[str, Any]:
        """The valid fields' values. Django marks a field with an error ``aria-invalid`` and describes it
        by ``<field id>_error``, the message's id in records/_list_filters.html."""
        self.is_valid()
        return dict(getattr(self, "cleaned_data", {}))


def assignee_filters(*, actor: Actor, choice: str) -> dict[str, Any]:
    """Selector arguments for the "assigned to" filter: ``me`` (the actor's person), ``my_groups`` (any
    group the actor's person belongs to), ``unassigned`` (no assignee). An actor without a person in
    this tenant matches nothing for ``me`` and ``my_groups``."""
    if choice == "me":
        return {"assigned_to": actor.person_id or uuid.UUID(int=0)}
    if choice == "my_groups":
        return {"assignment_group_member": actor.person_id or uuid.UUID(int=0)}
    if choice == "unassigned":
        return {"unassigned": True}
    return {}


def within_since(choice: str, *, now: dt.datetime | None = None) -> dt.datetime | None:
    """The UTC instant ``choice`` days ago (``"7"``: a week ago), or None for "any time"."""
    if not choice:
        return None
    return (now or timezone.now()) - dt.timedelta(days=int(choice))


def due_label(seconds: int) -> str:
    """A deadline as a person reads it: ``in 45 min``, ``in 2 h``, ``in 3 d``, or ``overdue 2 h``."""
    span = abs(seconds)
    if span < 3600:
        amount = f"{max(1, span // 60)} min"
    elif span < 2 * 86400:
        amount = f"{span // 3600} h"
    else:
        amount = f"{span // 86400} d"
    return f"in {amount}" if seconds >= 0 else f"overdue {amount}"


def sla_attach(rows: Iterable[Any], due: Mapping[Any, Any]) -> None:
    """Set ``sla_due`` on each row from ``due`` (record id -> ``modules.sla.selectors.SlaDue``, read for
    the whole page at once): a dict with ``label`` ("in 2 h", "overdue 3 h", "paused"), ``due_at`` (UTC,
    for the template's ``|date``) and ``overdue``; None for a row without an active SLA."""
    for row in rows:
        found = due.get(row.pk)
        if found is None:
            row.sla_due = None
        elif found.paused or found.due_in_seconds is None:
            row.sla_due = {"label": "paused", "due_at": None, "overdue": False}
        else:
            seconds = found.due_in_seconds
            row.sla_due = {"label": due_label(seconds), "due_at": found.due_at, "overdue": seconds < 0}
