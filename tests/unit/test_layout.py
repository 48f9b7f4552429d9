"""app/layout.py on its own: the network drawing's geometry from the config alone."""

from __future__ import annotations

import re

import pytest

from app.data.features import FEATURES
from app.layout import BODY, BOTTOM, COL_GAP, COMPACT_UNITS, MARKS, MIN_BODY, MIN_COL_GAP, WIDE_BODY, build_layout
from app.schema import SessionConfig
from app.settings import Settings

LIMITS = Settings()


def config(units: list[int], **fields) -> SessionConfig:
    return SessionConfig(hidden_layers=[{"units": n, "activation": "tanh"} for n in units], **fields)


# Shapes from the smallest to the limits: none, few, many columns; small, compact and huge layers.
SHAPES = [
    [],
    [1],
    [4, 2],
    [COMPACT_UNITS, COMPACT_UNITS],
    [COMPACT_UNITS + 1],
    [3, 40, 3],
    [8] * LIMITS.max_hidden_layers,
    [LIMITS.max_units, 2],
]
PROBLEMS = [
    dict(),
    dict(dataset="spiral", classes=10),
    dict(dataset="reg-plane", problem="regression", classes=0),
    dict(dataset="digits", classes=10),
]


def cases() -> list:
    return [
        pytest.param(config(units, **fields), id=f"{fields.get('dataset', 'circle')}-{units}")
        for units in SHAPES
        for fields in PROBLEMS
    ]


def boxes_overlap(a, b) -> bool:
    """Axis-aligned boxes (x0, y0, x1, y1)."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def node_box(node):
    h = node.size / 2
    return (node.x - h, node.y - h, node.x + h, node.y + h)


def variants(cfg, **kw):
    lay = build_layout(cfg, **kw)
    return [lay, *lay.variants]


def horizontal(cfg, **kw):
    return [v for v in variants(cfg, **kw) if not v.vertical]


@pytest.mark.parametrize("cfg", cases())
def test_three_drawings_of_one_network(cfg):
    standard, wide, vertical = variants(cfg)
    assert [v.variant for v in (standard, wide, vertical)] == ["standard", "wide", "vertical"]
    assert wide.width >= standard.width and wide.height < standard.height  # for landscape boxes
    assert vertical.width < standard.width and vertical.vertical  # for a phone held upright
    for lay in (standard, wide, vertical):
        assert [len(c.nodes) for c in lay.columns] == [len(c.nodes) for c in standard.columns]
        assert len(lay.links) == len(standard.links)


@pytest.mark.parametrize("cfg", cases())
def test_one_column_per_layer_in_order(cfg):
    hidden = len(cfg.hidden_layers)
    for lay in variants(cfg):
        assert [c.kind for c in lay.columns] == ["input"] + ["hidden"] * hidden + ["output", "loss"]
        assert [c.index for c in lay.columns] == [*range(hidden + 2), -1]
        assert [c.units for c in lay.columns[1:-1]] == [h.units for h in cfg.hidden_layers] + [max(cfg.classes, 1)]
        if lay.vertical:  # top to bottom, a row apart at least
            tops = [c.top for c in lay.columns]
            assert all(b - a >= lay.gap for a, b in zip(tops, tops[1:]))
        else:
            xs = [c.x for c in lay.columns]
            assert all(b - a >= lay.gap for a, b in zip(xs, xs[1:]))  # left to right, evenly apart at least
            assert lay.height == lay.core_top + lay.core_height + BOTTOM
            assert MIN_BODY * WIDE_BODY <= lay.core_height <= BODY


def test_deep_networks_bring_columns_closer_but_keep_room_for_their_controls():
    deep = build_layout(config([4] * LIMITS.max_hidden_layers))
    assert MARKS.control_width <= MIN_COL_GAP <= deep.gap < COL_GAP
    assert build_layout(config([4, 4])).gap == COL_GAP


@pytest.mark.parametrize("cfg", cases())
def test_every_node_lies_in_the_body_without_overlapping_another(cfg):
    for lay in variants(cfg):
        assert 0 < lay.columns[0].x and lay.columns[-1].box[0] + lay.columns[-1].box[2] <= lay.width
        boxes = [node_box(n) for c in lay.columns for n in c.nodes]
        assert boxes or not lay.plane  # a plane has at least its input features drawn
        for x0, y0, x1, y1 in boxes:
            assert 0 <= x0 and x1 <= lay.width and 0 <= y0 and y1 <= lay.height
            if not lay.vertical:
                assert lay.core_top <= y0 and y1 <= lay.core_top + lay.core_height
        for k, a in enumerate(boxes):
            assert not any(boxes_overlap(a, b) for b in boxes[k + 1 :])


@pytest.mark.parametrize("cfg", cases())
def test_large_layers_are_cells_and_their_links_weight_matrix_images(cfg):
    for lay in variants(cfg):
        columns = lay.columns[:-1]  # the loss column has no links
        for c in columns[1:]:
            assert c.compact == (c.units > COMPACT_UNITS)
            assert (c.nodes == []) == c.compact
        for l, (a, b) in enumerate(zip(columns, columns[1:])):
            lines = [k for k in lay.links if k.layer == l]
            images = [m for m in lay.matrices if m.layer == l]
            if a.compact or b.compact or a.image:
                assert lines == []
                assert all((m.rows, m.cols) == (a.units, b.units) and m.width > 0 and m.height > 0 for m in images)
                if a.nodes:  # one strip a row, level with its neuron: X₁'s weights beside X₁
                    active = [n for n in a.nodes if n.active]
                    assert [m.row for m in images] == list(range(a.units))
                    for m, n in zip(images, active):
                        if lay.vertical:
                            assert (m.x, m.width) == pytest.approx((n.x - n.size / 2, n.size))
                        else:
                            assert (m.y, m.height) == pytest.approx((n.y - n.size / 2, n.size))
                else:
                    assert len(images) == 1 and images[0].row is None
                for m in images:  # between the two columns' marks, covering neither
                    if lay.vertical:
                        assert m.transposed and m.y >= a.top and m.y + m.height <= b.top
                    elif a.compact:
                        assert m.x >= a.x + MARKS.cells_width / 2
                    if not lay.vertical:
                        right = b.x - (MARKS.cells_width / 2 if b.compact else b.nodes[0].size / 2)
                        assert m.x + m.width <= right
            else:
                assert images == [] and len(lines) == a.units * b.units
                for k in lines:
                    start, end = (tuple(map(float, p)) for p in re.findall(r"(-?[\d.]+),(-?[\d.]+)", k.d)[::3])
                    src = [n for n in a.nodes if n.active][k.i]
                    dst = b.nodes[k.j]
                    if lay.vertical:  # from under unit i's value to the top edge of unit j
                        assert start[0] == pytest.approx(src.x, abs=0.06) and start[1] > src.y + src.size / 2
                        assert end == pytest.approx((dst.x, dst.y - dst.size / 2), abs=0.06)
                    else:  # from the right edge of unit i to the left edge of unit j (written to 0.1)
                        assert start == pytest.approx((src.x + src.size / 2, src.y), abs=0.06)
                        assert end == pytest.approx((dst.x - dst.size / 2, dst.y), abs=0.06)


def test_the_rows_of_an_input_weight_matrix_line_up_with_the_input_features():
    """Issue 14: at 8×256 the input weight-matrix rows did not line up with X₁/X₂."""
    lay = build_layout(config([256] * 8))
    x1, x2 = [n for n in lay.columns[0].nodes if n.active]
    strips = [m for m in lay.matrices if m.layer == 0]
    assert [m.row for m in strips] == [0, 1]
    assert [m.y + m.height / 2 for m in strips] == pytest.approx([x1.y, x2.y])


def test_the_geometry_depends_on_the_config_alone():
    cfg = config([5, 3], dataset="xor", features=["x1", "x2", "x1x2"])
    assert build_layout(cfg) == build_layout(config([5, 3], dataset="xor", features=["x1", "x2", "x1x2"]))
    assert build_layout(cfg) != build_layout(config([5, 4], dataset="xor", features=["x1", "x2", "x1x2"]))


def test_every_input_feature_is_drawn_and_the_active_ones_numbered_in_order():
    cfg = config([2], features=["x2", "sin_x1"])
    for inputs in (lay.columns[0] for lay in variants(cfg)):
        assert [n.name for n in inputs.nodes] == list(FEATURES)
        active = [n for n in inputs.nodes if n.active]
        assert [n.name for n in active] == [f for f in FEATURES if f in cfg.features]
        assert [n.j for n in active] == list(range(len(active)))
        assert all(n.j == -1 for n in inputs.nodes if not n.active)
    # A view without controls draws only the active features.
    for lay in variants(cfg, all_features=False):
        assert [n.name for n in lay.columns[0].nodes] == ["x2", "sin_x1"]


# --- the marks around the nodes (Marks), which the template places ----------------------


@pytest.mark.parametrize("cfg", cases())
def test_column_controls_fit_beside_each_other(cfg):
    for lay in variants(cfg):
        assert lay.marks == MARKS
        hidden = [c for c in lay.columns if c.kind == "hidden"]
        assert all(c.control for c in hidden) and not any(c.control for c in lay.columns if c.kind != "hidden")
        boxes = [(x, y, x + w, y + h) for x, y, w, h in (c.control for c in hidden)]
        for k, a in enumerate(boxes):
            assert 0 <= a[0] and a[2] <= lay.width and 0 <= a[1]
            assert not any(boxes_overlap(a, b) for b in boxes[k + 1 :])
        for c in hidden:
            x, y, w, h = c.control
            if lay.vertical:  # in the row's band, right of its title, above its neurons
                assert y + h <= c.top and y >= c.labels[0].y - 16
            else:  # above the nodes (the page gives the band its height in pixels)
                assert y + h <= lay.core_top


@pytest.mark.parametrize("cfg", cases())
def test_column_labels_sit_below_the_nodes_or_above_the_row(cfg):
    for lay in variants(cfg):
        for c in lay.columns:
            roles = [label.role for label in c.labels]
            if lay.vertical:
                assert roles == ["title", "count"]
                assert all(label.y < c.top for label in c.labels)
                assert all(label.anchor == "start" for label in c.labels)
            else:
                assert roles == ["title", "count", "activation"]
                assert all(lay.core_top + lay.core_height < label.y < lay.height for label in c.labels)
                assert all(label.x == c.x for label in c.labels)


@pytest.mark.parametrize("cfg", [c for c in cases() if c.values[0].problem == "classification"])
def test_probability_bars_fit_between_the_output_nodes_and_the_loss_box(cfg):
    for lay in horizontal(cfg):
        out, loss = lay.columns[-2], lay.columns[-1]
        loss_left = loss.box[0]
        for n in out.nodes:
            bar = (
                n.x + n.size / 2 + MARKS.bar_gap,
                n.y - MARKS.bar_height / 2,
                n.x + n.size / 2 + MARKS.bar_gap + MARKS.bar_width,
                n.y + MARKS.bar_height / 2,
            )
            assert bar[2] < loss_left
            assert MARKS.bar_height < n.size  # a bar beside its node, not taller than it
            assert not any(boxes_overlap(bar, node_box(m)) for m in out.nodes)
        # The loss box stays inside the body, centred on its column.
        assert lay.core_top <= loss.box[1] and loss.box[1] + loss.box[3] <= lay.core_top + lay.core_height
        assert loss.box[0] + loss.box[2] / 2 == pytest.approx(loss.x)
    vertical = variants(cfg)[-1]
    out = vertical.columns[-2]
    if out.bars:  # under each node, clear of the neighbours' bars
        lefts = [n.x - MARKS.bar_width / 2 for n in out.nodes]
        assert all(b - a >= MARKS.bar_width for a, b in zip(lefts, lefts[1:]))


def test_a_compact_columns_cells_leave_room_for_its_neighbours():
    lay = build_layout(config([COMPACT_UNITS + 1, COMPACT_UNITS + 1]))
    a, b = lay.columns[1], lay.columns[2]
    assert a.compact and b.compact
    assert a.x + MARKS.cells_width / 2 < b.x - MARKS.cells_width / 2
