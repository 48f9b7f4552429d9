"""Geometry of the network drawing: where every column, neuron and link goes.

Pure function of the config (no weights), so the page can be drawn before a session
exists and redrawn by the server whenever the shape changes. Coordinates are SVG
viewBox units; the template turns them into elements and the page's JS only recolours.

Columns, left to right: input layer, hidden layers, output layer, loss layer (the seed
article's figure). A layer of more than COMPACT_UNITS neurons is drawn as a compact
column of cells, and links touching it as one weight-matrix image instead of lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.data import DATASETS
from app.data.features import FEATURES, LABELS
from app.schema import SessionConfig

COMPACT_UNITS = 16
TOP = 70.0  # room for the column titles above the nodes
BODY = 400.0  # height of the node area
BOTTOM = 84.0  # room for the labels under each column (title, count, activation)
COL_GAP = 150.0
NODE = 34.0
MIN_WIDTH = 800.0  # few columns are centred in this width instead of being blown up


@dataclass(frozen=True)
class Marks:
    """Sizes and offsets of what the template draws around columns and nodes, in viewBox
    units. They live here, next to the geometry they must fit (tests/unit/test_layout.py
    checks that they do), and the page's JS reads bar_width from the constants block."""

    control_width: float = 124.0  # a hidden column's units and activation controls, centred over it
    control_height: float = 62.0  # they sit in the TOP margin, from control_top down
    control_top: float = 2.0
    cells_width: float = 24.0  # a compact column's strip of cells
    matrix_gap: float = 6.0  # between a strip of cells and its weight-matrix image
    loss_width: float = 112.0  # the loss layer's box, centred on its column
    loss_height: float = 80.0
    bar_gap: float = 6.0  # between an output node and its probability bar
    bar_width: float = 44.0  # a probability bar at p = 1
    bar_height: float = 10.0
    name_gap: float = 6.0  # between an input feature's name (right-aligned) and its node
    value_drop: float = 11.0  # a node's value: baseline this far below the node
    title_rise: float = 56.0  # baselines of a column's title, neuron count and activation,
    count_rise: float = 36.0  # this far above the drawing's bottom edge (in the BOTTOM margin)
    activation_rise: float = 18.0


MARKS = Marks()


@dataclass
class Node:
    j: int  # index within the layer's active units (−1 for an inactive input feature)
    x: float
    y: float
    size: float
    name: str = ""  # feature name for inputs, class label for outputs
    label: str = ""
    active: bool = True


@dataclass
class Column:
    index: int  # 0 = input, then hidden layers, then output; the loss column has index −1
    kind: str  # input | hidden | output | loss
    x: float
    units: int
    activation: str
    compact: bool = False
    image: bool = False  # digits input: the sample drawn as an 8×8 image
    nodes: list[Node] = field(default_factory=list)
    top: float = TOP
    height: float = BODY


@dataclass
class Link:
    layer: int  # weight layer l: column l → column l+1
    i: int
    j: int
    d: str  # SVG path


@dataclass
class MatrixLink:
    layer: int
    x: float
    y: float
    width: float
    height: float
    rows: int
    cols: int


@dataclass
class Layout:
    width: float
    height: float
    columns: list[Column]
    links: list[Link]
    matrices: list[MatrixLink]
    plane: bool  # 2-D data: neurons carry heatmap thumbnails
    marks: Marks = MARKS


def _spread(count: int, pitch_max: float = 56.0) -> tuple[list[float], float]:
    """Vertical centres for `count` nodes centred in the body, and the pitch used."""
    pitch = min(pitch_max, BODY / max(count, 1))
    start = TOP + BODY / 2 - pitch * (count - 1) / 2
    return [start + k * pitch for k in range(count)], pitch


def build_layout(cfg: SessionConfig, dims: int | None = None, *, all_features: bool = True) -> Layout:
    """all_features: draw inactive input features too (dimmed), so a click can switch them on;
    a view without controls (the watch page) draws only the active ones."""
    spec = DATASETS.get(cfg.dataset)
    dims = dims or (spec.dims if spec else 2)
    plane = dims == 2
    hidden = [h.units for h in cfg.hidden_layers]
    outputs = cfg.classes if cfg.problem == "classification" else 1
    columns: list[Column] = []
    x = 70.0

    # Input layer: on a plane every candidate feature is drawn, inactive ones dimmed, so a
    # click can switch it on; digits show the sample as an image.
    if plane:
        names = list(FEATURES) if all_features else list(cfg.features)
        active = [n for n in names if n in cfg.features]
        ys, pitch = _spread(len(names), 52.0)
        size = min(NODE, pitch * 0.78)
        nodes = [
            Node(active.index(n) if n in active else -1, x, y, size, n, LABELS[n], n in active)
            for n, y in zip(names, ys)
        ]
        columns.append(Column(0, "input", x, len(active), "input", nodes=nodes))
    else:
        side = 110.0
        columns.append(Column(0, "input", x, dims, "input", image=True, top=TOP + (BODY - side) / 2, height=side))

    for l, units in enumerate(hidden, start=1):
        x += COL_GAP
        columns.append(_unit_column(l, "hidden", x, units, cfg.hidden_layers[l - 1].activation, plane))
    x += COL_GAP
    out = _unit_column(
        len(hidden) + 1, "output", x, outputs, "softmax" if cfg.problem == "classification" else "linear", plane
    )
    for node in out.nodes:
        node.name = str(node.j)
    columns.append(out)
    x += COL_GAP * 1.05  # the loss layer's label is the longest (交差エントロピー誤差)
    columns.append(Column(-1, "loss", x, 1, "cross_entropy" if cfg.problem == "classification" else "mse"))

    width = x + 80.0
    if width < MIN_WIDTH:
        _shift(columns, (MIN_WIDTH - width) / 2)
        width = MIN_WIDTH
    links, matrices = _links(columns[:-1])
    return Layout(width, TOP + BODY + BOTTOM, columns, links, matrices, plane)


def _shift(columns: list[Column], dx: float) -> None:
    for col in columns:
        col.x += dx
        for node in col.nodes:
            node.x += dx


def _unit_column(index: int, kind: str, x: float, units: int, activation: str, plane: bool) -> Column:
    if units > COMPACT_UNITS:
        return Column(index, kind, x, units, activation, compact=True)
    ys, pitch = _spread(units)
    size = min(NODE if plane else 26.0, pitch * 0.78)
    return Column(index, kind, x, units, activation, nodes=[Node(j, x, y, size) for j, y in enumerate(ys)])


def _anchor(col: Column, j: int) -> float:
    """Vertical position of unit j of a column (active units only)."""
    if col.compact or col.image:
        return col.top + col.height * (j + 0.5) / col.units
    return [n for n in col.nodes if n.active][j].y


def _links(columns: list[Column]) -> tuple[list[Link], list[MatrixLink]]:
    links, matrices = [], []
    for l, (a, b) in enumerate(zip(columns[:-1], columns[1:])):
        if a.compact or b.compact or a.image:
            beside_cells = MARKS.cells_width / 2 + MARKS.matrix_gap
            x0 = a.x + (a.height / 2 - 4 if a.image else beside_cells)
            x1 = b.x - (b.nodes[0].size / 2 + 4 if b.nodes else beside_cells)
            matrices.append(MatrixLink(l, x0, TOP, x1 - x0, BODY, a.units, b.units))
            continue
        xa = a.x + (a.nodes[0].size / 2 if a.nodes else 0)
        xb = b.x - (b.nodes[0].size / 2 if b.nodes else 0)
        mid = (xa + xb) / 2
        for i in range(a.units):
            ya = _anchor(a, i)
            for j in range(b.units):
                yb = _anchor(b, j)
                links.append(
                    Link(l, i, j, f"M{xa:.1f},{ya:.1f} C{mid:.1f},{ya:.1f} {mid:.1f},{yb:.1f} {xb:.1f},{yb:.1f}")
                )
    return links, matrices
