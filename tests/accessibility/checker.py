"""An HTML accessibility checker on the standard library's html.parser, for the page walker
(test_pages.py). It checks what can be seen in the markup alone (WCAG 2.x success criteria in brackets):

- ``label``: every visible input, select and textarea has a label: ``<label for>``, a wrapping
  ``<label>``, ``aria-label`` or ``aria-labelledby`` naming existing ids; no ``<label for>`` names a
  missing id (1.3.1, 4.1.2);
- ``duplicate-id``: no id is used twice (4.1.1 in 2.0/2.1; label ``for`` and ARIA references break);
- ``img-alt``: every ``<img>`` and ``<input type=image>`` has an ``alt`` (1.1.1; ``alt=""`` marks decoration);
- ``name``: every button, ``<summary>``, element with role button or link, and link with ``href`` has
  an accessible name: its text, the ``alt`` of an
  image inside, ``aria-label``, ``aria-labelledby`` or ``title`` (2.4.4, 4.1.2);
- ``tabindex``: no positive ``tabindex`` (2.4.3);
- ``native``: no click handler (``onclick``, or ``hx-get``/``hx-post``/... fired by a click) on an element
  that is not natively interactive unless it has both a ``role`` and a ``tabindex`` (2.1.1);
- ``aria-parts``: an element with a widget role (menu, listbox, tablist, ...) holds the parts that role's
  keyboard model moves between (menuitem, option, tab, ...): a bare ``role="menu"`` makes screen readers
  announce a menu that arrow keys cannot move through (4.1.2);
- ``describedby``: ``aria-describedby`` names existing ids: a field marked invalid whose error text is not
  on the page tells a screen reader nothing (3.3.1);
- page rules, for whole pages only: ``h1`` (exactly one), ``main`` (exactly one), ``lang`` (on ``<html>``).

``check(html, page=True)`` returns ``{rule: [message, ...]}`` with only the rules that failed; each
message names the element (tag, id, name, class, line).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track",
    "wbr",
}  # fmt: skip
NATIVE = {"a", "button", "input", "select", "textarea", "option", "summary", "label", "form", "details"}
NO_LABEL_INPUTS = {"hidden", "submit", "reset", "button", "image"}
HX_VERBS = ("hx-get", "hx-post", "hx-put", "hx-patch", "hx-delete")
ELEMENT_RULES = (
    "label",
    "duplicate-id",
    "img-alt",
    "name",
    "tabindex",
    "native",
    "aria-parts",
    "describedby",
)
# ARIA widgets whose keyboard model needs their parts: role -> the roles one of which must be inside.
WIDGET_PARTS = {
    "menu": {"menuitem", "menuitemcheckbox", "menuitemradio"},
    "menubar": {"menuitem", "menuitemcheckbox", "menuitemradio"},
    "listbox": {"option"},
    "tablist": {"tab"},
    "tree": {"treeitem"},
    "grid": {"row"},
    "radiogroup": {"radio"},
}
PAGE_RULES = ("h1", "main", "lang")
RULES = ELEMENT_RULES + PAGE_RULES


def describe(tag: str, attrs: dict[str, str], line: int) -> str:
    """``<input id="x" name="y" class="z"> (line 12)``: enough to find the element in the template."""
    shown = " ".join(f'{k}="{attrs[k]}"' for k in ("id", "name", "type", "href", "class") if attrs.get(k))
    return f"<{tag}{' ' + shown if shown else ''}> (line {line})"


@dataclass
class _Named:
    """An open button or link collecting the text that names it."""

    tag: str
    attrs: dict[str, str]
    line: int
    depth: int  # the length of the open-element stack below it: closed when the stack falls to it
    text: list[str] = field(default_factory=list)


@dataclass
class _Control:
    tag: str
    attrs: dict[str, str]
    line: int
    in_label: bool


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.ids: dict[str, int] = {}
        self.label_for: set[str] = set()
        self.label_fors: list[tuple[str, dict[str, str], int]] = []
        self.label_depth = 0
        self.controls: list[_Control] = []
        self.named: list[_Named] = []
        self.open_named: list[_Named] = []
        self.labelledby: list[tuple[str, dict[str, str], int]] = []
        self.describedby: list[tuple[str, dict[str, str], int]] = []
        self.failures: dict[str, list[str]] = {}
        self.widgets: list[tuple[str, str, int, list[str]]] = []  # (role, where, stack depth, roles inside)
        self.h1 = 0
        self.main = 0
        self.lang: str | None = None
        self.saw_html = False

    def fail(self, rule: str, message: str) -> None:
        self.failures.setdefault(rule, []).append(message)

    def handle_starttag(self, tag: str, attr_list: list[tuple[str, str | None]]) -> None:
        attrs = {k: (v or "") for k, v in attr_list}
        line = self.getpos()[0]
        where = describe(tag, attrs, line)
        if tag == "html":
            self.saw_html = True
            self.lang = attrs.get("lang", "").strip()
        element_id = attrs.get("id")
        if element_id is not None:
            if element_id in self.ids:
                self.fail(
                    "duplicate-id",
                    f'id="{element_id}" used again by {where} (first on line {self.ids[element_id]})',
                )
            else:
                self.ids[element_id] = line
        if attrs.get("aria-labelledby"):
            self.labelledby.append((tag, attrs, line))
        if attrs.get("aria-describedby"):
            self.describedby.append((tag, attrs, line))
        tabindex = attrs.get("tabindex", "").strip()
        if tabindex.lstrip("+").isdigit() and int(tabindex) > 0:
            self.fail("tabindex", f"positive tabindex={tabindex} on {where}")
        native = tag in NATIVE and (tag != "a" or "href" in attrs)
        keyboard_reachable = native or (attrs.get("role") and "tabindex" in attrs)
        if not keyboard_reachable and ("onclick" in attrs or self._hx_on_click(tag, attrs)):
            self.fail("native", f"click handler on non-interactive {where} without role and tabindex")
        if tag == "h1":
            self.h1 += 1
        elif tag == "main":
            self.main += 1
        elif tag == "label":
            self.label_depth += 1
            if attrs.get("for"):
                self.label_for.add(attrs["for"])
                self.label_fors.append((tag, attrs, line))
        elif tag == "img":
            if "alt" not in attrs:
                self.fail("img-alt", f"{where} has no alt")
            for named in self.open_named:
                named.text.append(attrs.get("alt", ""))
        elif tag in ("input", "select", "textarea"):
            kind = attrs.get("type", "text").lower() if tag == "input" else tag
            if kind == "image" and "alt" not in attrs:
                self.fail("img-alt", f"{where} has no alt")
            if kind not in NO_LABEL_INPUTS:
                self.controls.append(_Control(tag, attrs, line, self.label_depth > 0))
            if kind in ("button",) and not (
                attrs.get("value") or attrs.get("aria-label") or attrs.get("title")
            ):
                self.fail("name", f"{where} has no accessible name")
        elif (
            tag in ("button", "summary")
            or (tag == "a" and "href" in attrs)
            or attrs.get("role") in ("button", "link")
        ):
            named = _Named(tag, attrs, line, len(self.stack))
            self.named.append(named)
            self.open_named.append(named)
        elif tag in ("svg", "span", "i", "title") and self.open_named and attrs.get("aria-label"):
            for named in self.open_named:
                named.text.append(attrs["aria-label"])
        role = attrs.get("role", "").strip()
        for widget in self.widgets:
            widget[3].append(role)
        if role in WIDGET_PARTS and tag not in VOID:
            self.widgets.append((role, where, len(self.stack), []))
        if tag not in VOID:
            self.stack.append(tag)
            if attrs.get("aria-hidden") == "true":
                self.stack[-1] = tag + "\0hidden"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID and self.stack:
            self._close(tag)

    @staticmethod
    def _hx_on_click(tag: str, attrs: dict[str, str]) -> bool:
        if not any(verb in attrs for verb in HX_VERBS):
            return False
        trigger = attrs.get("hx-trigger")
        return trigger is None or "click" in trigger

    def _hidden(self) -> bool:
        return any(entry.endswith("\0hidden") for entry in self.stack)

    def handle_data(self, data: str) -> None:
        if self.open_named and not self._hidden():
            for named in self.open_named:
                named.text.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._close(tag)

    def _close(self, tag: str) -> None:
        names = [entry.split("\0")[0] for entry in self.stack]
        if tag not in names:
            return
        while self.stack:
            closed = self.stack.pop().split("\0")[0]
            if closed == "label":
                self.label_depth -= 1
            while self.open_named and self.open_named[-1].depth >= len(self.stack):
                self.open_named.pop()
            while self.widgets and self.widgets[-1][2] >= len(self.stack):
                role, where, _, inside = self.widgets.pop()
                if not WIDGET_PARTS[role] & set(inside):
                    self.fail(
                        "aria-parts",
                        f'role="{role}" on {where} holds no {"/".join(sorted(WIDGET_PARTS[role]))}',
                    )
            if closed == tag:
                break

    def finish(self, page: bool) -> dict[str, list[str]]:
        for tag, attrs, line in self.labelledby:
            missing = [ref for ref in attrs["aria-labelledby"].split() if ref not in self.ids]
            if missing:
                self.fail(
                    "name", f"{describe(tag, attrs, line)}: aria-labelledby names missing id(s) {missing}"
                )
        for tag, attrs, line in self.describedby:
            missing = [ref for ref in attrs["aria-describedby"].split() if ref not in self.ids]
            if missing:
                self.fail(
                    "describedby",
                    f"{describe(tag, attrs, line)}: aria-describedby names missing id(s) {missing}",
                )
        for tag, attrs, line in self.label_fors:
            if attrs["for"] not in self.ids:
                self.fail("label", f'{describe(tag, attrs, line)} labels a missing id "{attrs["for"]}"')
        for control in self.controls:
            attrs = control.attrs
            labelled = (
                control.in_label
                or (attrs.get("id") and attrs["id"] in self.label_for)
                or attrs.get("aria-label", "").strip()
                or attrs.get("aria-labelledby", "").strip()
            )
            if not labelled:
                self.fail("label", f"{describe(control.tag, attrs, control.line)} has no label")
        for named in self.named:
            attrs = named.attrs
            text = " ".join("".join(named.text).split())
            if not (
                text
                or attrs.get("aria-label", "").strip()
                or attrs.get("aria-labelledby")
                or attrs.get("title", "").strip()
            ):
                self.fail("name", f"{describe(named.tag, attrs, named.line)} has no accessible name")
        if page:
            if self.h1 != 1:
                self.fail("h1", f"{self.h1} <h1> elements (one wanted)")
            if self.main != 1:
                self.fail("main", f"{self.main} <main> elements (one wanted)")
            if not self.lang:
                self.fail("lang", "<html> has no lang" if self.saw_html else "no <html> element")
        return self.failures


def check(html: str, *, page: bool = True) -> dict[str, list[str]]:
    """Check ``html`` against the element rules, and the page rules when ``page``. Returns rule ->
    messages for the failed rules only (an empty dict when all pass)."""
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.finish(page)
