"""Geometry of the network drawing: where every column, neuron, link and label goes.

Pure function of the config (no weights), so the page can be drawn before a session
exists and redrawn by the server whenever the shape changes. Coordinates are SVG
viewBox units; the template turns them into elements and the page's JS only recolours
and chooses among the variants.

Columns, left to right: input layer, hidden layers, output layer, loss layer (the seed
article's figure). A layer of more than COMPACT_UNITS neurons is drawn as a compact
column of cells, and links touching it as weight-matrix images instead of lines.

One config, three drawings (`Layout.variants`), because a drawing that only scales cannot
stay readable: its text must keep a minimum size in CSS pixels (static/css/app.css), so
the page (static/js/network.js) picks the variant that comes out largest in its box:
  standard  left to right, columns closer together the more layers there are;
  wide      left to right, columns further apart and a shorter body: landscape boxes
            (a projector, a phone on its side, a wide embed) give the network the width;
  vertical  top to bottom, one row a layer: a portrait phone.
Text sizes in viewBox units are only what the bands are sized for; the page holds text at
its CSS size and never shrinks the drawing below the scale the bands were made for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.data import DATASETS
from app.data.features import FEATURES, LABELS
from app.schema import SessionConfig

COMPACT_UNITS = 16
TOP = 70.0  # room for the column titles above the nodes (a hidden column's controls)
BODY = 400.0  # height of the node area, at most (a short network gets a shorter body)
MIN_BODY = 240.0
BOTTOM = 84.0  # room for the labels under each column (title, count, activation)
COL_GAP = 150.0  # between columns, for up to four hidden layers
MIN_COL_GAP = 132.0  # the closest columns come: a hidden column's controls must fit between
NODE = 34.0
MIN_WIDTH = 800.0  # few columns are centred in this width instead of being blown up
LEFT = 80.0  # the first column's centre: room for the input features' names on its left
WIDE_GAP = 1.3  # the wide variant: columns this much further apart …
WIDE_BODY = 0.72  # … and a body this much shorter
V_WIDTH = 360.0  # the vertical variant's width: a phone's
V_MARGIN = 10.0
V_HEAD = 44.0  # a row's band for its title (line 1) and its count and activation (line 2)
V_NAMES = 34.0  # the input row's band for the features' names, above the nodes (on two lines, alternately)
V_LINKS = 52.0  # between a row's nodes (and their values) and the next row's band
V_VALUE = 17.0  # a neuron's value under it: links leave from below it


@dataclass(frozen=True)
class Marks:
    """Sizes and offsets of what the template draws around columns and nodes, in viewBox
    units. They live here, next to the geometry they must fit (tests/unit/test_layout.py
    checks that they do), and the page's JS reads bar_width from the constants block."""

    control_width: float = 130.0  # a hidden column's units and activation controls, centred over it
    control_height: float = 64.0  # they sit in the TOP margin, from control_top down
    control_top: float = 2.0
    cells_width: float = 24.0  # a compact column's strip of cells
    matrix_gap: float = 6.0  # between a strip of cells and its weight-matrix image
    loss_width: float = 112.0  # the loss layer's box, centred on its column
    loss_height: float = 80.0
    bar_gap: float = 6.0  # between an output node and its probability bar
    bar_width: float = 44.0  # a probability bar at p = 1
    bar_height: float = 10.0
    name_gap: float = 6.0  # between an input feature's name (right-aligned) and its node
    value_drop: float = 13.0  # a node's value: baseline this far below the node
    title_rise: float = 58.0  # baselines of a column's title, neuron count and activation,
    count_rise: float = 36.0  # this far above the drawing's bottom edge (in the BOTTOM margin)
    activation_rise: float = 14.0
    v_control_width: float = 176.0  # the vertical variant: controls on one line, right of the title
    v_control_height: float = 40.0


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
class Label:
    role: str  # title | count | activation
    x: float
    y: float  # baseline
    anchor: str = "middle"


@dataclass
class Column:
    index: int  # 0 = input, then hidden layers, then output; the loss column has index −1
    kind: str  # input | hidden | output | loss
    x: float  # centre (the vertical variant: of the row's nodes)
    units: int
    activation: str
    compact: bool = False
    image: bool = False  # digits input: the sample drawn as an 8×8 image
    nodes: list[Node] = field(default_factory=list)
    top: float = TOP
    height: float = BODY
    y: float = 0.0  # the vertical variant: the row's centre line
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # cells, image or loss box: x, y, w, h
    control: tuple[float, float, float, float] | None = None  # a hidden column's controls: x, y, w, h
    labels: list[Label] = field(default_factory=list)
    bars: bool = True  # output nodes have room for their probability bars
    pitch: float = 0.0  # between neighbouring nodes: a node's touch target takes its share


@dataclass
class Link:
    layer: int  # weight layer l: column l → column l+1
    i: int
    j: int
    d: str  # SVG path


@dataclass
class MatrixLink:
    """A weight-matrix image of layer `layer`, or of its row `row` alone when the column
    before it has nodes: that row's strip then lies level with its neuron."""

    layer: int
    x: float
    y: float
    width: float
    height: float
    rows: int
    cols: int
    row: int | None = None
    transposed: bool = False  # the vertical variant: row i runs across, column j down


@dataclass
class Layout:
    width: float
    height: float
    columns: list[Column]
    links: list[Link]
    matrices: list[MatrixLink]
    plane: bool  # 2-D data: neurons carry heatmap thumbnails
    marks: Marks = MARKS
    variant: str = "standard"  # standard | wide | vertical
    core_top: float = TOP  # the band of nodes and links (horizontal variants): the page sizes the
    core_height: float = BODY  # label and control bands around it in CSS pixels (static/js/network.js)
    gap: float = COL_GAP  # the least distance between neighbouring columns (rows in the vertical variant)
    variants: list[Layout] = field(default_factory=list)  # the other two, for the page to choose from

    @property
    def vertical(self) -> bool:
        return self.variant == "vertical"


@dataclass
class _Shape:
    """What every variant draws, from the config."""

    plane: bool
    dims: int
    inputs: list[tuple[str, bool]]  # (feature, active) in drawing order
    hidden: list[tuple[int, str]]  # (units, activation)
    outputs: int
    out_activation: str
    loss: str
    problem: str


def _shape(cfg: SessionConfig, dims: int | None, all_features: bool) -> _Shape:
    spec = DATASETS.get(cfg.dataset)
    dims = dims or (spec.dims if spec else 2)
    names = list(FEATURES) if all_features else list(cfg.features)
    classification = cfg.problem == "classification"
    return _Shape(
        plane=dims == 2,
        dims=dims,
        inputs=[(n, n in cfg.features) for n in names],
        hidden=[(h.units, h.activation) for h in cfg.hidden_layers],
        outputs=cfg.classes if classification else 1,
        out_activation="softmax" if classification else "linear",
        loss="cross_entropy" if classification else "mse",
        problem=cfg.problem,
    )


def build_layout(cfg: SessionConfig, dims: int | None = None, *, all_features: bool = True) -> Layout:
    """all_features: draw inactive input features too (dimmed), so a click can switch them on;
    a view without controls (the watch page) draws only the active ones. The result is the
    standard drawing, with the wide and vertical ones in `variants`."""
    shape = _shape(cfg, dims, all_features)
    gap = COL_GAP if len(shape.hidden) <= 4 else max(MIN_COL_GAP, COL_GAP - 6 * (len(shape.hidden) - 4))
    standard = _horizontal(shape, gap, _body(shape, 1.0), "standard")
    standard.variants = [
        _horizontal(shape, COL_GAP * WIDE_GAP, _body(shape, WIDE_BODY), "wide"),
        _vertical(shape),
    ]
    return standard


def _body(shape: _Shape, factor: float) -> float:
    """The node area's height: the tallest column's at 56 units a node (44 an input feature),
    within MIN_BODY … BODY, times factor for the wide variant."""
    inputs = len(shape.inputs) * 44.0 if shape.plane else 150.0
    units = [n * 56.0 for n, _ in shape.hidden if n <= COMPACT_UNITS] + [shape.outputs * 56.0]
    return max(MIN_BODY, min(BODY, max([inputs, *units]))) * factor


def _spread(count: int, top: float, body: float, pitch_max: float = 56.0) -> tuple[list[float], float]:
    """Centres for `count` nodes centred in the body, and the pitch used."""
    pitch = min(pitch_max, body / max(count, 1))
    start = top + body / 2 - pitch * (count - 1) / 2
    return [start + k * pitch for k in range(count)], pitch


def _horizontal(shape: _Shape, gap: float, body: float, variant: str) -> Layout:
    columns: list[Column] = []
    x = LEFT
    if shape.plane:
        ys, pitch = _spread(len(shape.inputs), TOP, body, 52.0)
        size = min(NODE, pitch * 0.72)
        active = [n for n, on in shape.inputs if on]
        nodes = [
            Node(active.index(n) if on else -1, x, y, size, n, LABELS[n], on) for (n, on), y in zip(shape.inputs, ys)
        ]
        columns.append(Column(0, "input", x, len(active), "input", nodes=nodes, top=TOP, height=body, pitch=pitch))
    else:
        side = min(110.0, body)
        top = TOP + (body - side) / 2
        col = Column(0, "input", x, shape.dims, "input", image=True, top=top, height=side)
        col.box = (x - side / 2, top, side, side)
        columns.append(col)
    for l, (units, act) in enumerate(shape.hidden, start=1):
        x += gap
        columns.append(_unit_column(l, "hidden", x, units, act, shape.plane, body))
    x += gap
    out = _unit_column(len(shape.hidden) + 1, "output", x, shape.outputs, shape.out_activation, shape.plane, body)
    for node in out.nodes:
        node.name = str(node.j)
    columns.append(out)
    x += gap * 1.05  # the loss layer's label is the longest
    loss = Column(-1, "loss", x, 1, shape.loss, top=TOP, height=body)
    loss.box = (x - MARKS.loss_width / 2, TOP + body / 2 - MARKS.loss_height / 2, MARKS.loss_width, MARKS.loss_height)
    columns.append(loss)

    width = x + 80.0
    if width < MIN_WIDTH:
        _shift(columns, (MIN_WIDTH - width) / 2)
        width = MIN_WIDTH
    height = TOP + body + BOTTOM
    for col in columns:
        col.labels = [
            Label("title", col.x, height - MARKS.title_rise),
            Label("count", col.x, height - MARKS.count_rise),
            Label("activation", col.x, height - MARKS.activation_rise),
        ]
        if col.kind == "hidden":
            col.control = (
                col.x - MARKS.control_width / 2,
                MARKS.control_top,
                MARKS.control_width,
                MARKS.control_height,
            )
    links, matrices = _links(columns[:-1], vertical=False)
    return Layout(width, height, columns, links, matrices, shape.plane, variant=variant, core_height=body, gap=gap)


def _shift(columns: list[Column], dx: float) -> None:
    for col in columns:
        col.x += dx
        bx, by, bw, bh = col.box
        col.box = (bx + dx, by, bw, bh)
        for node in col.nodes:
            node.x += dx


def _unit_column(index: int, kind: str, x: float, units: int, activation: str, plane: bool, body: float) -> Column:
    if units > COMPACT_UNITS:
        col = Column(index, kind, x, units, activation, compact=True, top=TOP, height=body)
        col.box = (x - MARKS.cells_width / 2, TOP, MARKS.cells_width, body)
        return col
    ys, pitch = _spread(units, TOP, body)
    size = min(NODE if plane else 26.0, pitch * 0.7)
    nodes = [Node(j, x, y, size) for j, y in enumerate(ys)]
    return Column(index, kind, x, units, activation, nodes=nodes, top=TOP, height=body, pitch=pitch)


def _vertical(shape: _Shape) -> Layout:
    """Top to bottom, one row a layer; a row's title and its controls in a band above it."""
    centre = V_WIDTH / 2
    columns: list[Column] = []
    y = 0.0

    def row(col: Column, band: float) -> None:
        nonlocal y
        col.labels = [
            Label("title", V_MARGIN, y + 16.0, "start"),
            Label("count", V_MARGIN, y + 36.0, "start"),
        ]
        if col.kind == "hidden":
            w, h = MARKS.v_control_width, MARKS.v_control_height
            col.control = (V_WIDTH - V_MARGIN - w, y + 2.0, w, h)
        col.y = y + V_HEAD + band / 2
        y += V_HEAD + band + V_LINKS
        columns.append(col)

    row(*_input_row(shape, y + V_HEAD))
    for l, (units, act) in enumerate(shape.hidden, start=1):
        row(*_unit_row(l, "hidden", units, act, shape.plane, y + V_HEAD))
    out, band = _unit_row(len(shape.hidden) + 1, "output", shape.outputs, shape.out_activation, shape.plane, y + V_HEAD)
    for node in out.nodes:
        node.name = str(node.j)
    out.bars = bool(out.nodes) and (len(out.nodes) < 2 or out.nodes[1].x - out.nodes[0].x >= MARKS.bar_width + 6)
    row(out, band)
    loss = Column(-1, "loss", centre, 1, shape.loss, top=y + V_HEAD, height=MARKS.loss_height)
    loss.box = (centre - MARKS.loss_width / 2, y + V_HEAD, MARKS.loss_width, MARKS.loss_height)
    row(loss, MARKS.loss_height)
    height = y - V_LINKS + 8.0
    links, matrices = _links(columns[:-1], vertical=True)
    gap = min(b.top - a.top for a, b in zip(columns, columns[1:]))
    return Layout(
        V_WIDTH,
        height,
        columns,
        links,
        matrices,
        shape.plane,
        variant="vertical",
        core_top=0.0,
        core_height=height,
        gap=gap,
    )


def _input_row(shape: _Shape, top: float) -> tuple[Column, float]:
    """The vertical variant's input row from `top`: the features' names above their nodes (a
    plane), or the sample's image; and the band it takes."""
    centre = V_WIDTH / 2
    if not shape.plane:
        side = 96.0
        col = Column(0, "input", centre, shape.dims, "input", image=True, top=top, height=side)
        col.box = (centre - side / 2, top, side, side)
        return col, side
    count = len(shape.inputs)
    pitch = min(56.0, (V_WIDTH - 2 * V_MARGIN) / max(count, 1))
    size = min(NODE, pitch * 0.74)
    xs = [centre + (k - (count - 1) / 2) * pitch for k in range(count)]
    active = [n for n, on in shape.inputs if on]
    node_y = top + V_NAMES + size / 2
    nodes = [
        Node(active.index(n) if on else -1, nx, node_y, size, n, LABELS[n], on) for (n, on), nx in zip(shape.inputs, xs)
    ]
    band = V_NAMES + size + MARKS.value_drop + 4.0
    return Column(0, "input", centre, len(active), "input", nodes=nodes, top=top, height=band, pitch=pitch), band


def _unit_row(index: int, kind: str, units: int, activation: str, plane: bool, top: float) -> tuple[Column, float]:
    """A row of neurons (or a strip of cells) starting at `top`, and the band it takes: the
    nodes, their probability bars and their values."""
    inner = V_WIDTH - 2 * V_MARGIN
    centre = V_WIDTH / 2
    if units > COMPACT_UNITS:
        w = MARKS.cells_width
        col = Column(index, kind, centre, units, activation, compact=True, top=top, height=w)
        col.box = (V_MARGIN, top, inner, w)
        return col, w
    pitch = min(56.0, inner / units)
    size = min(NODE if plane else 26.0, pitch * 0.74)
    xs = [centre + (k - (units - 1) / 2) * pitch for k in range(units)]
    nodes = [Node(j, nx, top + size / 2, size) for j, nx in enumerate(xs)]
    band = size + MARKS.value_drop + 4.0 + (MARKS.bar_gap + MARKS.bar_height if kind == "output" else 0.0)
    col = Column(index, kind, centre, units, activation, nodes=nodes, top=top, height=band, pitch=pitch)
    return col, band


def _anchor(col: Column, j: int, vertical: bool) -> float:
    """Position of unit j of a column along the column (active units only)."""
    if col.compact or col.image:
        start, length = (col.box[0], col.box[2]) if vertical else (col.box[1], col.box[3])
        return start + length * (j + 0.5) / col.units
    node = [n for n in col.nodes if n.active][j]
    return node.x if vertical else node.y


def _matrices(l: int, a: Column, b: Column, vertical: bool) -> list[MatrixLink]:
    """The weight-matrix image(s) between columns a and b: one, or one strip a row when a
    has nodes, each level with its node (an input feature X₁ and its weights line up)."""
    gap = MARKS.cells_width / 2 + MARKS.matrix_gap
    if vertical:
        y0 = a.box[1] + a.box[3] + MARKS.matrix_gap if (a.compact or a.image) else a.top + a.height - 4.0
        y1 = b.box[1] - MARKS.matrix_gap if b.compact else b.top - 4.0
        if a.compact or a.image:
            return [MatrixLink(l, V_MARGIN, y0, V_WIDTH - 2 * V_MARGIN, y1 - y0, a.units, b.units, transposed=True)]
        active = [n for n in a.nodes if n.active]
        return [
            MatrixLink(l, n.x - n.size / 2, y0, n.size, y1 - y0, a.units, b.units, row=i, transposed=True)
            for i, n in enumerate(active)
        ]
    x0 = a.x + (a.box[2] / 2 + 4 if a.image else gap if a.compact else a.nodes[0].size / 2 + 4)
    x1 = b.x - (b.nodes[0].size / 2 + 4 if b.nodes else gap)
    if a.compact or a.image:
        return [MatrixLink(l, x0, a.top, x1 - x0, a.height, a.units, b.units)]
    active = [n for n in a.nodes if n.active]
    return [MatrixLink(l, x0, n.y - n.size / 2, x1 - x0, n.size, a.units, b.units, row=i) for i, n in enumerate(active)]


def _links(columns: list[Column], vertical: bool) -> tuple[list[Link], list[MatrixLink]]:
    links: list[Link] = []
    matrices: list[MatrixLink] = []
    for l, (a, b) in enumerate(zip(columns[:-1], columns[1:])):
        if a.compact or b.compact or a.image:
            matrices += _matrices(l, a, b, vertical)
            continue
        if vertical:  # from under the values of a's neurons to the top of b's
            ya, yb = a.nodes[0].y + a.nodes[0].size / 2 + V_VALUE, b.nodes[0].y - b.nodes[0].size / 2
        else:
            xa, xb = a.x + a.nodes[0].size / 2, b.x - b.nodes[0].size / 2
        for i in range(a.units):
            pa = _anchor(a, i, vertical)
            for j in range(b.units):
                pb = _anchor(b, j, vertical)
                if vertical:
                    mid = (ya + yb) / 2
                    d = f"M{pa:.1f},{ya:.1f} C{pa:.1f},{mid:.1f} {pb:.1f},{mid:.1f} {pb:.1f},{yb:.1f}"
                else:
                    mid = (xa + xb) / 2
                    d = f"M{xa:.1f},{pa:.1f} C{mid:.1f},{pa:.1f} {mid:.1f},{pb:.1f} {xb:.1f},{pb:.1f}"
                links.append(Link(l, i, j, d))
    return links, matrices
