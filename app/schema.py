"""The session config: every field and its range declared once, and the rules that merge a
partial change into a complete config.

Each field's type below (an `Annotated` type carrying its range) is used by both models:
ConfigFields (every field optional: the POST and PATCH bodies) and SessionConfig (complete:
what a session runs with, also checked when it comes from a snapshot file). The query-string
codec (querycodec.py) and the sliders' bounds (`field_bounds`) are derived from the same
declarations, so a range is written in one place only.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

import annotated_types
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationError

from app.budget import MB, Sizing, check_session_memory
from app.data import DATASETS
from app.data.features import FEATURES
from app.errors import FieldError
from app.nn import HIDDEN_ACTIVATIONS, INITS, OPTIMIZERS, REGULARIZATIONS, SCHEDULES


# --- the fields -------------------------------------------------------------------------
def _distinct(features: list[str]) -> list[str]:
    if len(set(features)) != len(features):
        raise ValueError("features must not repeat")
    return features


# The choices come from the engine's and the data's own tables, so they are built at run time;
# for the type checker they are text.
if TYPE_CHECKING:
    Activation: TypeAlias = str
    Feature: TypeAlias = str
    DatasetName: TypeAlias = str
    Optimizer: TypeAlias = str
    Regularization: TypeAlias = str
    Init: TypeAlias = str
    LrSchedule: TypeAlias = str
else:
    Activation = Literal[HIDDEN_ACTIVATIONS]
    Feature = Literal[tuple(FEATURES)]
    DatasetName = Literal[(*DATASETS, "custom")]
    Optimizer = Literal[tuple(OPTIMIZERS)]
    Regularization = Literal[REGULARIZATIONS]
    Init = Literal[INITS]
    LrSchedule = Literal[SCHEDULES]
Problem = Literal["classification", "regression"]
ClassCount = Annotated[StrictInt, Field(ge=2, le=10, description="class count for gauss and spiral")]
NPoints = Annotated[StrictInt, Field(ge=4, description="points in the dataset")]
Noise = Annotated[float, Field(ge=0.0, le=0.5, allow_inf_nan=False)]
TrainFraction = Annotated[float, Field(ge=0.1, le=0.9, allow_inf_nan=False)]
BatchSize = Annotated[StrictInt, Field(ge=1, description="≥ the training-set size means full batch")]
LearningRate = Annotated[float, Field(gt=0.0, le=100.0, allow_inf_nan=False)]
Seed = Annotated[StrictInt, Field(ge=0, lt=2**32)]
DataSeed = Annotated[StrictInt, Field(ge=0, lt=2**32, description="defaults to seed; Regenerate changes it")]
Features = Annotated[list[Feature], Field(min_length=1), AfterValidator(_distinct)]
RegularizationRate = Annotated[float, Field(ge=0.0, le=10.0, allow_inf_nan=False)]
EpochsPerFrame = Annotated[StrictInt, Field(ge=1, le=1000)]
LrPeriod = Annotated[StrictInt, Field(ge=1, le=100_000, description="epochs per step decay / cosine cycle")]


class HiddenLayer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    units: StrictInt = Field(ge=1, description="neurons in this layer")
    activation: Activation = "tanh"


def _default_hidden() -> list[HiddenLayer]:
    return [HiddenLayer(units=4, activation="tanh"), HiddenLayer(units=2, activation="tanh")]


class ConfigFields(BaseModel):
    """Every field optional: the shape of both POST (create) and PATCH (change) bodies."""

    model_config = ConfigDict(extra="forbid")

    dataset: DatasetName | None = None
    problem: Problem | None = Field(None, description="follows from the dataset")
    classes: ClassCount | None = None
    n_points: NPoints | None = None
    noise: Noise | None = None
    train_fraction: TrainFraction | None = None
    batch_size: BatchSize | None = None
    hidden_layers: list[HiddenLayer] | None = None
    learning_rate: LearningRate | None = None
    seed: Seed | None = None
    data_seed: DataSeed | None = None
    features: Features | None = None
    optimizer: Optimizer | None = None
    regularization: Regularization | None = None
    regularization_rate: RegularizationRate | None = None
    init: Init | None = None
    epochs_per_frame: EpochsPerFrame | None = None
    lr_schedule: LrSchedule | None = None
    lr_period: LrPeriod | None = None


class CreateBody(ConfigFields):
    snapshot: str | None = Field(None, max_length=64, description="start from a saved snapshot")


class SessionConfig(BaseModel):
    """A complete, consistent config: what a session actually runs with."""

    model_config = ConfigDict(extra="forbid")

    dataset: DatasetName = "circle"
    problem: Problem = "classification"
    classes: Literal[0] | ClassCount = 2  # 0 for regression
    n_points: NPoints = 500
    noise: Noise = 0.0
    train_fraction: TrainFraction = 0.5
    batch_size: BatchSize = 10
    hidden_layers: list[HiddenLayer] = Field(default_factory=_default_hidden)
    learning_rate: LearningRate = 0.03
    seed: Seed = 0
    data_seed: DataSeed | None = None
    features: Features = Field(default_factory=lambda: ["x1", "x2"])
    optimizer: Optimizer = "sgd"
    regularization: Regularization = "none"
    regularization_rate: RegularizationRate = 0.0
    init: Init = "xavier"
    epochs_per_frame: EpochsPerFrame = 1
    lr_schedule: LrSchedule = "constant"
    lr_period: LrPeriod = 100

    @property
    def effective_data_seed(self) -> int:
        return self.seed if self.data_seed is None else self.data_seed


# Fields that follow from others, so a share link leaves them out (querycodec.to_query).
DERIVED_FIELDS = frozenset({"problem"})
DATA_FIELDS = frozenset({"dataset", "classes", "n_points", "noise", "train_fraction", "data_seed"})


def field_bounds(name: str) -> dict[str, float]:
    """A numeric field's range as {"min", "max"} (for a slider), read from its declaration."""
    bounds: dict[str, float] = {}
    for meta in SessionConfig.model_fields[name].metadata:
        for key, attr in (("min", "ge"), ("min", "gt"), ("max", "le"), ("max", "lt")):
            value = getattr(meta, attr, None)
            if value is not None and isinstance(meta, getattr(annotated_types, attr.capitalize())):
                bounds[key] = value
    return bounds


# --- limits and merging ---------------------------------------------------------------
@dataclass(frozen=True)
class Limits:
    """The operator's limits on a config (Settings holds their defaults and meaning)."""

    max_hidden_layers: int = 8
    max_units: int = 256
    max_points: int = 5000
    max_session_bytes: int = 256 * MB  # a session's estimated memory (app/budget.py)
    sizing: Sizing = Sizing()  # what besides the config decides that estimate

    @classmethod
    def of(cls, settings) -> Limits:
        return cls(
            settings.max_hidden_layers,
            settings.max_units,
            settings.max_points,
            int(settings.max_session_mb * MB),
            Sizing.of(settings),
        )


def check_limits(cfg: SessionConfig, limits: Limits) -> None:
    if len(cfg.hidden_layers) > limits.max_hidden_layers:
        raise FieldError(
            "hidden_layers",
            f"at most {limits.max_hidden_layers} hidden layers (limit max_hidden_layers)",
            code="limit_hidden_layers",
            max=limits.max_hidden_layers,
        )
    for i, layer in enumerate(cfg.hidden_layers):
        if layer.units > limits.max_units:
            raise FieldError(
                f"hidden_layers.{i}.units",
                f"at most {limits.max_units} units per layer (limit max_units)",
                code="limit_units",
                max=limits.max_units,
            )
    check_point_count(cfg.n_points, limits)
    check_session_memory(cfg, limits.max_session_bytes, limits.sizing)


def check_point_count(n_points: int, limits: Limits) -> None:
    if n_points > limits.max_points:
        raise FieldError(
            "n_points",
            f"at most {limits.max_points} points (limit max_points)",
            code="limit_points",
            max=limits.max_points,
        )


def resolve(base: SessionConfig | None, change: ConfigFields, limits: Limits) -> SessionConfig:
    """Merge a partial config into `base` (or the defaults), fill what follows from the
    dataset, and check the server's limits. Raises FieldError naming the offending field."""
    given = change.model_dump(exclude_none=True, exclude={"snapshot"})
    merged = ({"seed": secrets.randbelow(2**31)} if base is None else base.model_dump()) | given
    name = merged.get("dataset", "circle")
    if name == "custom":
        _check_custom(base, given)
    else:
        fresh = base is None or ("dataset" in given and given["dataset"] != base.dataset)
        _fill_from_dataset(name, merged, given, fresh)
    cfg = validate_model(SessionConfig, merged)
    check_limits(cfg, limits)
    return cfg


def _check_custom(base: SessionConfig | None, given: dict) -> None:
    if base is None or base.dataset != "custom":
        raise FieldError("dataset", "'custom' data comes from an upload or edited points, not from a config")
    for fixed in ("problem", "classes", "n_points"):
        if fixed in given and given[fixed] != getattr(base, fixed):
            raise FieldError(fixed, "this follows from your uploaded or edited data")


def _fill_from_dataset(name: str, merged: dict, given: dict, fresh: bool) -> None:
    """What follows from a bundled dataset: its problem, its default class and point counts
    (a newly chosen dataset brings its own), and the inputs of image data."""
    spec = DATASETS[name]
    if "problem" in given and given["problem"] != spec.problem:
        raise FieldError("problem", f"dataset {name!r} is a {spec.problem} problem")
    merged["problem"] = spec.problem
    if fresh:
        if "classes" not in given:
            merged["classes"] = spec.default_classes
        if "n_points" not in given:
            merged["n_points"] = spec.default_points
    if spec.problem == "regression":
        merged["classes"] = 0
    else:
        if merged["classes"] not in spec.classes:
            allowed = ", ".join(map(str, spec.classes))
            raise FieldError("classes", f"dataset {name!r} supports {allowed} classes")
        if merged["n_points"] < merged["classes"]:
            raise FieldError(
                "n_points",
                f"{merged['classes']} classes need at least {merged['classes']} points",
                code="points_per_class",
                min=merged["classes"],
            )
    if spec.dims != 2:  # bundled images: a fixed set of samples and their own inputs
        if merged["n_points"] > spec.default_points:
            raise FieldError("n_points", f"dataset {name!r} has {spec.default_points} samples")
        if "features" in given and given["features"] != ["x1", "x2"]:
            raise FieldError("features", f"dataset {name!r} has its own inputs; features apply to 2-D data only")
        merged["features"] = ["x1", "x2"]


def validate_model(model: type[BaseModel], data: Any):
    """model.model_validate(data), with the first problem raised as a FieldError naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise FieldError(field, err["msg"], code="invalid", name=field) from None
