"""The CI page's relationship and impact graph, laid out in Python and drawn as SVG (no JavaScript).

Layers follow the direction a failure travels (decision 0007): the CIs whose failure reaches this CI
directly (what it runs on, depends on, is contained in) stand in the column left of it, this CI in the
middle column, and the CIs its failure reaches in one column per hop to the right, each joined to the CI
it was reached from along its shortest explaining path (``selectors.ci_impact_get``). Within a column,
CIs follow the order of the CIs they were reached from, then their number, which keeps most edges from
crossing. Every node is an ``<a href>`` to its CI page (focusable with the keyboard); business services
are drawn highlighted. The size is bounded: at most MAX_NODES CIs (MAX_UPSTREAM of them on the left),
nearest first, and the graph says how many were left out. The page keeps the same CIs as text tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from .models import SOURCE_IMPACTS_TARGET, CIClass, ConfigurationItem, rel_reading
from .selectors import ImpactedCI, RelationshipView

MAX_NODES = 30
MAX_UPSTREAM = 8
NODE_W, NODE_H, COL_GAP, ROW_GAP, MARGIN = 180, 58, 70, 14, 12
NAME_CHARS = 24


@dataclass
class GraphNode:
    """One CI drawn at ``(x, y)`` (its box's top-left corner, SVG user units) in column ``layer``
    (-1 upstream, 0 this CI, n = reached in n hops)."""

    id: str
    number: str
    name: str
    ci_class: str
    layer: int
    url: str
    is_current: bool = False
    x: float = 0.0
    y: float = 0.0

    @property
    def is_business_service(self) -> bool:
        return self.ci_class == CIClass.BUSINESS_SERVICE


@dataclass(frozen=True)
class GraphEdge:
    """``source`` -> ``target`` (node ids) in the direction a failure travels, read as ``label``
    ("runs", "used by", "contains")."""

    source: str
    target: str
    label: str


@dataclass
class ImpactGraph:
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    left_out: int
    width: float = 0.0
    height: float = 0.0
    by_id: dict[str, GraphNode] = field(default_factory=dict)


def _upstream(relationships: Sequence[RelationshipView]) -> list[tuple[RelationshipView, str]]:
    """The relationships along which another CI's failure reaches this one, with their reading from
    that other CI (for "this CI runs on S": S "runs" this CI)."""
    found = []
    for r in relationships:
        other_is_source = r.direction == "incoming"
        reaches_us = (r.rel_type in SOURCE_IMPACTS_TARGET) == other_is_source
        if reaches_us:
            found.append((r, rel_reading(r.rel_type, outgoing=other_is_source)))
    return found


def impact_graph_build(
    *,
    ci: ConfigurationItem,
    relationships: Sequence[RelationshipView],
    impact: Sequence[ImpactedCI],
    url_for: Callable[[str], str],
    max_nodes: int = MAX_NODES,
) -> ImpactGraph:
    """The laid-out graph of ``ci``: its relationships (``selectors.ci_relationship_list``) and impact
    (``selectors.ci_impact_get``, nearest first). ``url_for(number)`` gives a CI's page. At most
    ``max_nodes`` nodes (this CI, up to MAX_UPSTREAM upstream CIs, then impacted CIs nearest first, so
    every drawn CI's predecessor is drawn too); ``left_out`` counts the CIs not drawn."""
    current = GraphNode(str(ci.pk), ci.number, ci.name, ci.ci_class, 0, url_for(ci.number), is_current=True)
    nodes: dict[str, GraphNode] = {current.id: current}
    edges: list[GraphEdge] = []
    impacted_ids = {str(i.id) for i in impact}
    upstream = [(r, label) for r, label in _upstream(relationships) if str(r.other.id) not in impacted_ids]
    candidates = len({str(r.other.id) for r, _ in upstream}) + len(impact)
    for r, label in upstream:
        other = str(r.other.id)
        if other not in nodes and len(nodes) - 1 < MAX_UPSTREAM and len(nodes) < max_nodes:
            nodes[other] = GraphNode(
                other, r.other.number, r.other.name, r.other.ci_class, -1, url_for(r.other.number)
            )
        if other in nodes:
            edges.append(GraphEdge(other, current.id, label))
    parent_of: dict[str, str] = {}
    for item in impact:
        if len(nodes) >= max_nodes:
            break
        node_id = str(item.id)
        parent = item.path_ids[-2] if len(item.path_ids) >= 2 else current.id
        if parent not in nodes:
            continue
        nodes[node_id] = GraphNode(
            node_id, item.number, item.name, item.ci_class, item.depth, url_for(item.number)
        )
        parent_of[node_id] = parent
        edges.append(GraphEdge(parent, node_id, item.steps[-1].reading if item.steps else ""))
    graph = ImpactGraph(nodes=list(nodes.values()), edges=edges, left_out=candidates - (len(nodes) - 1))
    _layout(graph, parent_of)
    return graph


def _layout(graph: ImpactGraph, parent_of: dict[str, str]) -> None:
    """Place the nodes: one column per layer, each column centred vertically, rows ordered by the row
    of the CI each was reached from, then by number."""
    layers = sorted({n.layer for n in graph.nodes})
    columns: dict[int, list[GraphNode]] = {layer: [] for layer in layers}
    for node in graph.nodes:
        columns[node.layer].append(node)
    row: dict[str, int] = {}
    for layer in layers:
        column = columns[layer]
        column.sort(key=lambda n: (row.get(parent_of.get(n.id, ""), -1), not n.is_business_service, n.number))
        row.update((n.id, i) for i, n in enumerate(column))
    tallest = max(len(c) for c in columns.values())
    graph.height = MARGIN * 2 + tallest * NODE_H + (tallest - 1) * ROW_GAP
    graph.width = MARGIN * 2 + len(layers) * NODE_W + (len(layers) - 1) * COL_GAP
    for index, layer in enumerate(layers):
        column = columns[layer]
        column_h = len(column) * NODE_H + (len(column) - 1) * ROW_GAP
        top = (graph.height - column_h) / 2
        for i, node in enumerate(column):
            node.x = MARGIN + index * (NODE_W + COL_GAP)
            node.y = top + i * (NODE_H + ROW_GAP)
    graph.by_id = {n.id: n for n in graph.nodes}


def _short(text: str) -> str:
    return text if len(text) <= NAME_CHARS else text[: NAME_CHARS - 1] + "…"


def impact_graph_svg(graph: ImpactGraph, *, title: str) -> SafeString:
    """The graph as one ``<svg role="group">`` with ``<title>``/``<desc>``: an arrow per edge with its
    label, a box per node inside ``<a href>`` (this CI dark, business services outlined in orange on a
    light fill, with "business service" in their accessible name). Every text is escaped."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {graph.width:.0f} {graph.height:.0f}"'
        f' width="{graph.width:.0f}" height="{graph.height:.0f}" role="group"'
        ' aria-labelledby="ci-graph-title ci-graph-desc" font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="ci-graph-title">{escape(title)}</title>',
        f'<desc id="ci-graph-desc">{len(graph.nodes)} configuration items and {len(graph.edges)} relationships,'
        " drawn in the direction a failure travels, left to right."
        + (f" {graph.left_out} more not drawn." if graph.left_out else "")
        + "</desc>",
        '<defs><marker id="ci-graph-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7"'
        ' markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#57606a"/></marker></defs>',
    ]
    for edge in graph.edges:
        a, b = graph.by_id[edge.source], graph.by_id[edge.target]
        forward = b.x >= a.x
        x1 = a.x + NODE_W if forward else a.x
        x2 = b.x if forward else b.x + NODE_W
        y1, y2 = a.y + NODE_H / 2, b.y + NODE_H / 2
        bend = (x2 - x1) / 2
        parts.append(
            f'<path d="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"'
            ' fill="none" stroke="#57606a" stroke-width="1.5" marker-end="url(#ci-graph-arrow)"/>'
        )
        if edge.label:
            parts.append(
                f'<text x="{(x1 + x2) / 2:.1f}" y="{(y1 + y2) / 2 - 4:.1f}" text-anchor="middle" fill="#1a1a1a"'
                f' stroke="#fff" stroke-width="4" paint-order="stroke" font-size="11">{escape(edge.label)}</text>'
            )
    for node in graph.nodes:
        if node.is_current:
            fill, stroke, ink, width = "#1f5fa8", "#0b3a6e", "#fff", 2
        elif node.is_business_service:
            fill, stroke, ink, width = "#fff4d6", "#a34700", "#1a1a1a", 3
        else:
            fill, stroke, ink, width = "#fff", "#57606a", "#1a1a1a", 1
        kind = "business service" if node.is_business_service else node.ci_class.replace("_", " ")
        label = f"{node.number} {node.name} ({kind}{', this CI' if node.is_current else ''})"
        weight = ' font-weight="700"' if node.is_business_service else ""
        parts.append(
            f'<a href="{escape(node.url)}" aria-label="{escape(label)}" class="ci-node'
            f'{" business-service" if node.is_business_service else ""}{" current" if node.is_current else ""}">'
            f"<title>{escape(label)}</title>"
            f'<rect x="{node.x:.1f}" y="{node.y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="6"'
            f' fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>'
            f'<text x="{node.x + 8:.1f}" y="{node.y + 17:.1f}" fill="{ink}" font-weight="700">'
            f"{escape(node.number)}</text>"
            f'<text x="{node.x + 8:.1f}" y="{node.y + 33:.1f}" fill="{ink}">{escape(_short(node.name))}</text>'
            f'<text x="{node.x + 8:.1f}" y="{node.y + 49:.1f}" fill="{ink}" font-size="11"'
            f"{weight}>{escape(kind.capitalize())}</text>"
            "</a>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped
