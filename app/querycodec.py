"""A config written as strings: page URLs (?hidden=4:tanh,2:tanh&noise=0.1) and htmx forms.

How each value is read follows from its field's declared type in schema.py (a whole number,
a number, a choice, or a list), so adding a field to the schema adds it here too.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping

from app.errors import FieldError
from app.schema import DERIVED_FIELDS, ConfigFields, SessionConfig, validate_model

# Query names that are not config fields but the short forms of one.
ALIASES = {"hidden": "hidden_layers"}


def _scalar_kind(annotation) -> type | None:
    """int, float or str for a field whose type is (an optional) number or choice; None for lists."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    base = args[0]
    while typing.get_origin(base) is typing.Annotated:
        base = typing.get_args(base)[0]
    if typing.get_origin(base) is typing.Literal:
        return str
    if typing.get_origin(base) is list:
        return None
    return base if base in (int, float) else str


KINDS = {name: _scalar_kind(f.annotation) for name, f in ConfigFields.model_fields.items()}


def parse_hidden(text: str) -> list[dict]:
    """'4:tanh,2:relu' → [{"units": 4, "activation": "tanh"}, …]; '' → no hidden layers."""
    layers = []
    for k, part in enumerate(p for p in text.split(",") if p.strip()):
        units, _, activation = part.strip().partition(":")
        try:
            n = int(units)
        except ValueError:
            raise FieldError(f"hidden.{k}", f"{part!r} should look like 4:tanh (units:activation)") from None
        layers.append({"units": n, **({"activation": activation} if activation else {})})
    return layers


def _number(key: str, value: str, kind: type):
    try:
        return kind(value)
    except ValueError:
        raise FieldError(key, f"{value!r} is not {'a whole number' if kind is int else 'a number'}") from None


def fields_from_strings(params: Mapping[str, str], *, ignore_unknown: bool) -> ConfigFields:
    """A ConfigFields from string values, each converted by its field's type; errors name the field."""
    data: dict = {}
    for key, value in params.items():
        name = ALIASES.get(key, key)
        if name == "hidden_layers":
            data[name] = parse_hidden(value)
        elif name == "features":
            data[name] = [f for f in value.split(",") if f]
        elif name in KINDS:
            kind = KINDS[name]
            data[name] = _number(key, value, kind) if kind is int or kind is float else value
        elif not ignore_unknown:
            raise FieldError(key, "unknown setting")
    return validate_model(ConfigFields, data)


def to_query(cfg: SessionConfig) -> dict[str, str]:
    """The config as page-URL parameters: opening that URL rebuilds the same session."""
    # What follows from other fields is left out, and so is regression's class count.
    skip = set(DERIVED_FIELDS) | ({"classes"} if cfg.problem == "regression" else set())
    q: dict[str, str] = {}
    for name, value in cfg.model_dump(exclude=skip).items():
        if name == "hidden_layers":
            q["hidden"] = ",".join(f"{h.units}:{h.activation}" for h in cfg.hidden_layers)
        elif name == "features":
            q[name] = ",".join(value)
        elif value is not None:
            q[name] = str(value)
    return q
