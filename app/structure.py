"""Structure editing: what one structure button does to a config, as a pure function."""

from __future__ import annotations

from typing import Any

from app.data.features import FEATURES
from app.errors import FieldError
from app.protocol import StructureOp
from app.schema import ConfigFields, Limits, SessionConfig, resolve, validate_model

NEW_LAYER_MAX_UNITS = 8  # a new layer copies the last one, but starts small enough to see


def edit_structure(cfg: SessionConfig, edit: StructureOp, limits: Limits) -> SessionConfig:
    """The config after one structure edit: add or remove a layer (at the end) or a unit, set
    a layer's activation, toggle an input feature. The result passes the same rules and
    limits as any change (`resolve`); raises FieldError naming what is wrong."""
    layers: list[dict[str, Any]] = [h.model_dump() for h in cfg.hidden_layers]
    features = list(cfg.features)
    if edit.op in ("add_unit", "remove_unit", "activation"):
        layer = len(layers) - 1 if edit.layer is None else edit.layer
        if not 0 <= layer < len(layers):
            raise FieldError("layer", f"there is no hidden layer {layer}")
        if edit.op == "activation":
            layers[layer]["activation"] = edit.activation or ""
        else:
            layers[layer]["units"] += 1 if edit.op == "add_unit" else -1
    elif edit.op == "add_layer":
        template: dict[str, Any] = layers[-1] if layers else {"units": 4, "activation": "tanh"}
        layers.append({"units": min(template["units"], NEW_LAYER_MAX_UNITS), "activation": template["activation"]})
    elif edit.op == "remove_layer":
        if not layers:
            raise FieldError("hidden_layers", "there is no hidden layer to remove")
        layers.pop()
    elif edit.op == "toggle_feature":
        features = _toggled(features, edit.feature or "")
    else:
        raise FieldError("op", "unknown structure operation")
    change = validate_model(ConfigFields, {"hidden_layers": layers, "features": features})
    return resolve(cfg, change, limits)


def _toggled(features: list[str], name: str) -> list[str]:
    if name not in FEATURES:
        raise FieldError("feature", f"unknown feature; choose one of {', '.join(FEATURES)}")
    if name in features:
        if len(features) == 1:
            raise FieldError("features", "keep at least one input feature", code="keep_one_feature")
        return [f for f in features if f != name]
    return [f for f in FEATURES if f in features or f == name]  # keep the canonical order
