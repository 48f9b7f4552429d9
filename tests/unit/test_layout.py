"""app/layout.py on its own: the network drawing's geometry from the config alone."""

from __future__ import annotations

import re

import pytest

from app.data.features import FEATURES
from app.layout import BODY, BOTTOM, COL_GAP, COMPACT_UNITS, MARKS, TOP, build_layout
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


@pytest.mark.parametrize("cfg", cases())
def test_one_column_per_layer_in_order(cfg):
    lay = build_layout(cfg)
    hidden = len(cfg.hidden_layers)
    assert [c.kind for c in lay.columns] == ["input"] + ["hidden"] * hidden + ["output", "loss"]
    assert [c.index for c in lay.columns] == [*range(hidden + 2), -1]
    assert [c.units for c in lay.columns[1:-1]] == [h.units for h in cfg.hidden_layers] + [max(cfg.classes, 1)]
    xs = [c.x for c in lay.columns]
    assert all(b - a >= COL_GAP for a, b in zip(xs, xs[1:]))  # left to right, evenly apart at least
    assert lay.height == TOP + BODY + BOTTOM


@pytest.mark.parametrize("cfg", cases())
def test_every_node_lies_in_the_body_without_overlapping_another(cfg):
    lay = build_layout(cfg)
    assert 0 < lay.columns[0].x and lay.columns[-1].x + MARKS.loss_width / 2 <= lay.width
    boxes = [node_box(n) for c in lay.columns for n in c.nodes]
    assert boxes or not lay.plane  # a plane has at least its input features drawn
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 and x1 <= lay.width and TOP <= y0 and y1 <= TOP + BODY
    for k, a in enumerate(boxes):
        assert not any(boxes_overlap(a, b) for b in boxes[k + 1 :])


@pytest.mark.parametrize("cfg", cases())
def test_large_layers_are_cells_and_their_links_weight_matrix_images(cfg):
    lay = build_layout(cfg)
    columns = lay.columns[:-1]  # the loss column has no links
    for c in columns[1:]:
        assert c.compact == (c.units > COMPACT_UNITS)
        assert (c.nodes == []) == c.compact
    for l, (a, b) in enumerate(zip(columns, columns[1:])):
        lines = [k for k in lay.links if k.layer == l]
        images = [m for m in lay.matrices if m.layer == l]
        if a.compact or b.compact or a.image:
            assert lines == [] and len(images) == 1
            m = images[0]
            assert (m.rows, m.cols) == (a.units, b.units)
            # Between the two columns' marks, covering neither.
            assert m.width > 0
            if a.compact:
                assert m.x >= a.x + MARKS.cells_width / 2
            if b.compact:
                assert m.x + m.width <= b.x - MARKS.cells_width / 2
            else:
                assert m.x + m.width <= b.x - b.nodes[0].size / 2
        else:
            assert images == [] and len(lines) == a.units * b.units
            for k in lines:
                start, end = (tuple(map(float, p)) for p in re.findall(r"(-?[\d.]+),(-?[\d.]+)", k.d)[::3])
                # From the right edge of unit i to the left edge of unit j (written to 0.1).
                src = [n for n in a.nodes if n.active][k.i]
                dst = b.nodes[k.j]
                assert start == pytest.approx((src.x + src.size / 2, src.y), abs=0.06)
                assert end == pytest.approx((dst.x - dst.size / 2, dst.y), abs=0.06)


def test_the_geometry_depends_on_the_config_alone():
    cfg = config([5, 3], dataset="xor", features=["x1", "x2", "x1x2"])
    assert build_layout(cfg) == build_layout(config([5, 3], dataset="xor", features=["x1", "x2", "x1x2"]))
    assert build_layout(cfg) != build_layout(config([5, 4], dataset="xor", features=["x1", "x2", "x1x2"]))


def test_every_input_feature_is_drawn_and_the_active_ones_numbered_in_order():
    cfg = config([2], features=["x2", "sin_x1"])
    inputs = build_layout(cfg).columns[0]
    assert [n.name for n in inputs.nodes] == list(FEATURES)
    active = [n for n in inputs.nodes if n.active]
    assert [n.name for n in active] == [f for f in FEATURES if f in cfg.features]
    assert [n.j for n in active] == list(range(len(active)))
    assert all(n.j == -1 for n in inputs.nodes if not n.active)
    # A view without controls draws only the active features.
    assert [n.name for n in build_layout(cfg, all_features=False).columns[0].nodes] == [n.name for n in active]


# --- the marks around the nodes (Marks), which the template places ----------------------


@pytest.mark.parametrize("cfg", cases())
def test_column_controls_fit_above_the_nodes_and_beside_each_other(cfg):
    lay = build_layout(cfg)
    assert lay.marks == MARKS
    assert MARKS.control_top >= 0 and MARKS.control_top + MARKS.control_height <= TOP
    hidden = [c for c in lay.columns if c.kind == "hidden"]
    for a, b in zip(hidden, hidden[1:]):
        assert a.x + MARKS.control_width / 2 <= b.x - MARKS.control_width / 2
    for c in hidden:
        assert c.x - MARKS.control_width / 2 >= 0 and c.x + MARKS.control_width / 2 <= lay.width


@pytest.mark.parametrize("cfg", cases())
def test_column_labels_sit_below_the_nodes_and_their_values(cfg):
    lay = build_layout(cfg)
    title, count, act = (lay.height - r for r in (MARKS.title_rise, MARKS.count_rise, MARKS.activation_rise))
    assert TOP + BODY < title < count < act < lay.height
    lowest_value = max((n.y + n.size / 2 + MARKS.value_drop for c in lay.columns for n in c.nodes), default=TOP)
    # Room for the title's capitals (16 px type in app.css) between a node's value and the title.
    assert title - lowest_value >= 12


@pytest.mark.parametrize("cfg", [c for c in cases() if c.values[0].problem == "classification"])
def test_probability_bars_fit_between_the_output_nodes_and_the_loss_box(cfg):
    lay = build_layout(cfg)
    out, loss = lay.columns[-2], lay.columns[-1]
    loss_left = loss.x - MARKS.loss_width / 2
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
    assert TOP <= loss.top + loss.height / 2 - MARKS.loss_height / 2
    assert loss.top + loss.height / 2 + MARKS.loss_height / 2 <= TOP + BODY


def test_a_compact_columns_cells_leave_room_for_its_neighbours():
    lay = build_layout(config([COMPACT_UNITS + 1, COMPACT_UNITS + 1]))
    a, b = lay.columns[1], lay.columns[2]
    assert a.compact and b.compact
    assert a.x + MARKS.cells_width / 2 < b.x - MARKS.cells_width / 2
