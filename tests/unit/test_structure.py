"""edit_structure: what each structure button does to a config, as a pure function."""

from __future__ import annotations

import pytest

from app.errors import FieldError
from app.protocol import StructureOp
from app.schema import HiddenLayer, Limits, SessionConfig
from app.structure import NEW_LAYER_MAX_UNITS, edit_structure

LIMITS = Limits()


def config(*layers: tuple[int, str], **fields) -> SessionConfig:
    return SessionConfig(hidden_layers=[HiddenLayer(units=u, activation=a) for u, a in layers], **fields)


def shape(cfg: SessionConfig) -> list[tuple[int, str]]:
    return [(h.units, h.activation) for h in cfg.hidden_layers]


def test_add_layer_copies_the_last_layer_capped_in_width():
    cfg = config((4, "tanh"), (32, "relu"))
    after = edit_structure(cfg, StructureOp("add_layer"), LIMITS)
    assert shape(after) == [(4, "tanh"), (32, "relu"), (NEW_LAYER_MAX_UNITS, "relu")]
    assert shape(cfg) == [(4, "tanh"), (32, "relu")]  # the input config is not changed


def test_add_layer_to_no_hidden_layers_starts_a_small_tanh_layer():
    assert shape(edit_structure(config(), StructureOp("add_layer"), LIMITS)) == [(4, "tanh")]


def test_remove_layer_drops_the_last_and_refuses_when_none_is_left():
    assert shape(edit_structure(config((4, "tanh"), (2, "relu")), StructureOp("remove_layer"), LIMITS)) == [(4, "tanh")]
    with pytest.raises(FieldError) as e:
        edit_structure(config(), StructureOp("remove_layer"), LIMITS)
    assert e.value.field == "hidden_layers"


@pytest.mark.parametrize(("op", "expected"), [("add_unit", 5), ("remove_unit", 3)])
def test_units_change_in_the_named_layer_only(op, expected):
    after = edit_structure(config((4, "tanh"), (4, "tanh")), StructureOp(op, layer=0), LIMITS)
    assert shape(after) == [(expected, "tanh"), (4, "tanh")]


def test_the_last_unit_cannot_be_removed_and_the_limit_holds():
    with pytest.raises(FieldError) as fewer:
        edit_structure(config((1, "tanh")), StructureOp("remove_unit", layer=0), LIMITS)
    assert fewer.value.field == "hidden_layers.0.units"
    with pytest.raises(FieldError) as more:
        edit_structure(config((3, "tanh")), StructureOp("add_unit", layer=0), Limits(max_units=3))
    assert more.value.code == "limit_units" and more.value.field == "hidden_layers.0.units"


def test_activation_is_set_and_checked():
    after = edit_structure(config((4, "tanh")), StructureOp("activation", layer=0, activation="relu"), LIMITS)
    assert shape(after) == [(4, "relu")]
    with pytest.raises(FieldError) as e:
        edit_structure(config((4, "tanh")), StructureOp("activation", layer=0, activation="cosine"), LIMITS)
    assert e.value.field == "hidden_layers.0.activation"


def test_a_missing_layer_is_named():
    with pytest.raises(FieldError) as e:
        edit_structure(config((4, "tanh")), StructureOp("add_unit", layer=3), LIMITS)
    assert e.value.field == "layer"


def test_features_toggle_in_canonical_order_and_one_stays():
    cfg = config((4, "tanh"), features=["x2"])
    assert edit_structure(cfg, StructureOp("toggle_feature", feature="x1"), LIMITS).features == ["x1", "x2"]
    assert edit_structure(config(features=["x1", "x2"]), StructureOp("toggle_feature", feature="x1"),
                          LIMITS).features == ["x2"]  # fmt: skip
    with pytest.raises(FieldError) as last:
        edit_structure(cfg, StructureOp("toggle_feature", feature="x2"), LIMITS)
    assert last.value.code == "keep_one_feature"
    with pytest.raises(FieldError) as unknown:
        edit_structure(cfg, StructureOp("toggle_feature", feature="x3"), LIMITS)
    assert unknown.value.field == "feature"


def test_image_data_keeps_its_own_inputs():
    digits = config((8, "relu"), dataset="digits", classes=10, n_points=200)
    with pytest.raises(FieldError) as e:
        edit_structure(digits, StructureOp("toggle_feature", feature="x1x2"), LIMITS)
    assert e.value.field == "features"
