"""Server settings and the session config schema.

Settings come from the environment (HOST, PORT, EMBED_ORIGINS, …) through
pydantic-settings; routes read them through a dependency so tests can override them.
SessionConfig holds the ranges the API contract fixes; the server's own limits
(layers, units, points) are checked against Settings by `check_limits`, so an
operator can change them without touching the schema.
"""
from __future__ import annotations

import math
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.requests import Request

from app.data import DATASETS
from app.data.features import FEATURES
from app.nn import HIDDEN_ACTIVATIONS, INITS, OPTIMIZERS, REGULARIZATIONS, SCHEDULES


def _default_db_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mlp-playground" / "snapshots.sqlite3"


class Settings(BaseSettings):
    """Everything an operator may tune. Environment variables use the upper-case names."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1))  # training processes
    # Limits (every one is named in the 4xx/429 a request over it receives).
    max_sessions: int = 200
    max_hidden_layers: int = 8
    max_units: int = 256
    max_points: int = 5000
    max_watchers: int = 100  # SSE streams per session
    max_fps: int = 60
    max_body_bytes: int = 2_000_000
    max_upload_bytes: int = 1_000_000
    max_upload_rows: int = 5000
    max_snapshot_bytes: int = 5_000_000
    max_snapshots: int = 10_000
    session_ttl_seconds: float = 1800.0  # idle sessions (no stream, not running) are evicted
    idle_pause_seconds: float = 30.0  # a running session nobody watches or calls is paused (nothing lost)
    # Training pace: a running session advances `epochs_per_frame` epochs per tick, at most
    # `tick_hz` ticks a second, and never spends more than `max_tick_ms` in one tick so one
    # heavy session cannot starve the others on its worker.
    tick_hz: float = 60.0
    idle_tick_hz: float = 30.0
    max_tick_ms: float = 40.0
    grid: int = 100  # heatmap resolution of the output plot (peer: 100×100)
    thumb_stride: int = 5  # neuron thumbnails keep every 5th grid point (centred): 20×20
    history_len: int = 2000  # loss-history points kept per session (older ones thinned)
    timeline_bytes: int = 4_000_000  # per session: checkpoints for the timeline scrubber (thinned past this)
    embed_origins: str = "'self'"  # CSP frame-ancestors, space-separated origins
    admin_token: str | None = None
    db_path: Path = Field(default_factory=_default_db_path)


@lru_cache
def env_settings() -> Settings:
    return Settings()


def get_settings(request: Request = None) -> Settings:  # type: ignore[assignment]
    """As a route dependency: the settings the app was created with (app.state.settings);
    called directly: the environment's. Not a dependency override: with any override set,
    FastAPI re-analyses every dependency's signature on every request."""
    if request is not None:
        return request.app.state.settings
    return env_settings()


Activation = Literal[HIDDEN_ACTIVATIONS]  # type: ignore[valid-type]
Feature = Literal[tuple(FEATURES)]  # type: ignore[valid-type]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class HiddenLayer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    units: StrictInt = Field(ge=1, description="neurons in this layer")
    activation: Activation = "tanh"


DEFAULT_HIDDEN = [HiddenLayer(units=4, activation="tanh"), HiddenLayer(units=2, activation="tanh")]


class ConfigFields(BaseModel):
    """Every field optional: the shape of both POST (create) and PATCH (change) bodies."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(None, description="circle | xor | gauss | spiral | moons | digits | reg-plane | reg-gauss")
    problem: Literal["classification", "regression"] | None = Field(None, description="from the dataset")
    classes: StrictInt | None = Field(None, ge=2, le=10, description="class count for gauss and spiral")
    n_points: StrictInt | None = Field(None, ge=4, description="points in the dataset")
    noise: FiniteFloat | None = Field(None, ge=0.0, le=0.5)
    train_fraction: FiniteFloat | None = Field(None, ge=0.1, le=0.9)
    batch_size: StrictInt | None = Field(None, ge=1, description="≥ the training-set size means full batch")
    hidden_layers: list[HiddenLayer] | None = None
    learning_rate: FiniteFloat | None = Field(None, gt=0.0, le=100.0)
    seed: StrictInt | None = Field(None, ge=0, lt=2**32)
    data_seed: StrictInt | None = Field(None, ge=0, lt=2**32, description="defaults to seed; Regenerate changes it")
    features: list[Feature] | None = Field(None, min_length=1)
    optimizer: Literal[tuple(OPTIMIZERS)] | None = None  # type: ignore[valid-type]
    regularization: Literal[REGULARIZATIONS] | None = None  # type: ignore[valid-type]
    regularization_rate: FiniteFloat | None = Field(None, ge=0.0, le=10.0)
    init: Literal[INITS] | None = None  # type: ignore[valid-type]
    epochs_per_frame: StrictInt | None = Field(None, ge=1, le=1000)
    lr_schedule: Literal[SCHEDULES] | None = None  # type: ignore[valid-type]
    lr_period: StrictInt | None = Field(None, ge=1, le=100_000, description="epochs per step decay / cosine cycle")

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str | None) -> str | None:
        if v is not None and v not in DATASETS and v != "custom":
            raise ValueError(f"unknown dataset; choose one of {', '.join(DATASETS)}")
        return v

    @field_validator("features")
    @classmethod
    def _distinct(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("features must not repeat")
        return v


class CreateBody(ConfigFields):
    snapshot: str | None = Field(None, max_length=64, description="start from a saved snapshot")


class SessionConfig(BaseModel):
    """A complete, consistent config: what a session actually runs with. The same ranges as
    the request schema, so a config from anywhere (a snapshot file, say) is checked too."""

    model_config = ConfigDict(extra="forbid")

    dataset: Literal[(*DATASETS, "custom")] = "circle"  # type: ignore[valid-type]
    problem: Literal["classification", "regression"] = "classification"
    classes: int = Field(2, ge=0, le=10)  # 0 for regression
    n_points: int = Field(500, ge=4)
    noise: FiniteFloat = Field(0.0, ge=0.0, le=0.5)
    train_fraction: FiniteFloat = Field(0.5, ge=0.1, le=0.9)
    batch_size: int = Field(10, ge=1)
    hidden_layers: list[HiddenLayer] = Field(default_factory=lambda: [h.model_copy() for h in DEFAULT_HIDDEN])
    learning_rate: FiniteFloat = Field(0.03, gt=0.0, le=100.0)
    seed: int = Field(0, ge=0, lt=2**32)
    data_seed: int | None = Field(None, ge=0, lt=2**32)
    features: list[Feature] = Field(default_factory=lambda: ["x1", "x2"], min_length=1)
    optimizer: Literal[tuple(OPTIMIZERS)] = "sgd"  # type: ignore[valid-type]
    regularization: Literal[REGULARIZATIONS] = "none"  # type: ignore[valid-type]
    regularization_rate: FiniteFloat = Field(0.0, ge=0.0, le=10.0)
    init: Literal[INITS] = "xavier"  # type: ignore[valid-type]
    epochs_per_frame: int = Field(1, ge=1, le=1000)
    lr_schedule: Literal[SCHEDULES] = "constant"  # type: ignore[valid-type]
    lr_period: int = Field(100, ge=1, le=100_000)

    @property
    def effective_data_seed(self) -> int:
        return self.seed if self.data_seed is None else self.data_seed


class FieldError(ValueError):
    """A request value that is not acceptable; `field` is a dotted path.

    `message` is English for API clients; `code` and `params` let the page show the same
    thing in the reader's language (catalog key "error.<code>").
    """

    def __init__(self, field: str, message: str, status: int = 422, *, code: str | None = None, **params):
        super().__init__(message)
        self.field, self.message, self.status = field, message, status
        self.code, self.params = code, params


def resolve(base: SessionConfig | None, change: ConfigFields, settings: Settings) -> SessionConfig:
    """Merge a partial config into `base` (or the defaults), fill what follows from the
    dataset, and check the server's limits. Raises FieldError naming the offending field."""
    given = change.model_dump(exclude_none=True, exclude={"snapshot"})
    if base is None:
        merged = {"seed": secrets.randbelow(2**31)} | given
    else:
        merged = base.model_dump() | given
    dataset_changed = "dataset" in given and (base is None or given["dataset"] != base.dataset)
    name = merged.get("dataset", "circle")
    if name == "custom":
        if base is None or base.dataset != "custom":
            raise FieldError("dataset", "'custom' data comes from an upload or edited points, not from a config")
        for fixed in ("problem", "classes", "n_points"):
            if fixed in given and given[fixed] != getattr(base, fixed):
                raise FieldError(fixed, "this follows from your uploaded or edited data")
    else:
        spec = DATASETS[name]
        if "problem" in given and given["problem"] != spec.problem:
            raise FieldError("problem", f"dataset {name!r} is a {spec.problem} problem")
        merged["problem"] = spec.problem
        if dataset_changed or base is None:  # a new dataset brings its own defaults
            if "classes" not in given:
                merged["classes"] = spec.default_classes
            if "n_points" not in given:
                merged["n_points"] = spec.default_points
        if spec.problem == "classification" and merged["classes"] not in spec.classes:
            allowed = ", ".join(map(str, spec.classes))
            raise FieldError("classes", f"dataset {name!r} supports {allowed} classes")
        if spec.problem == "regression":
            merged["classes"] = 0
        elif merged["n_points"] < merged["classes"]:
            raise FieldError("n_points", f"{merged['classes']} classes need at least {merged['classes']} points",
                             code="points_per_class", min=merged["classes"])
        if spec.dims != 2:  # bundled images: a fixed set of samples and their own inputs
            if merged["n_points"] > spec.default_points:
                raise FieldError("n_points", f"dataset {name!r} has {spec.default_points} samples")
            if "features" in given and given["features"] != ["x1", "x2"]:
                raise FieldError("features", f"dataset {name!r} has its own inputs; features apply to 2-D data only")
            merged["features"] = ["x1", "x2"]
    cfg = SessionConfig.model_validate(merged)
    check_limits(cfg, settings)
    return cfg


def check_limits(cfg: SessionConfig, settings: Settings) -> None:
    if len(cfg.hidden_layers) > settings.max_hidden_layers:
        raise FieldError("hidden_layers", f"at most {settings.max_hidden_layers} hidden layers (limit max_hidden_layers)",
                         code="limit_hidden_layers", max=settings.max_hidden_layers)
    for i, layer in enumerate(cfg.hidden_layers):
        if layer.units > settings.max_units:
            raise FieldError(f"hidden_layers.{i}.units", f"at most {settings.max_units} units per layer (limit max_units)",
                             code="limit_units", max=settings.max_units)
    if cfg.n_points > settings.max_points:
        raise FieldError("n_points", f"at most {settings.max_points} points (limit max_points)",
                         code="limit_points", max=settings.max_points)
    if not math.isfinite(cfg.learning_rate):
        raise FieldError("learning_rate", "must be a finite number")


# --- configs written as strings: page URLs (?hidden=4:tanh,2:tanh) and htmx forms -----------
INT_FIELDS = {"classes", "n_points", "batch_size", "seed", "data_seed", "epochs_per_frame", "lr_period"}
FLOAT_FIELDS = {"noise", "train_fraction", "learning_rate", "regularization_rate"}
TEXT_FIELDS = {"dataset", "problem", "optimizer", "regularization", "init", "lr_schedule"}


def parse_hidden(text: str) -> list[dict]:
    """'4:tanh,2:relu' → [{"units": 4, "activation": "tanh"}, …]; '' → no hidden layers."""
    layers = []
    for k, part in enumerate(p for p in text.split(",") if p.strip()):
        units, _, activation = part.strip().partition(":")
        try:
            n = int(units)
        except ValueError:
            raise FieldError(f"hidden.{k}", f"{part!r} should look like 4:tanh (units:activation)")
        layers.append({"units": n, **({"activation": activation} if activation else {})})
    return layers


def fields_from_strings(params, *, ignore_unknown: bool) -> ConfigFields:
    """A ConfigFields from string values, each converted by its field's type; errors name the field."""
    data: dict = {}
    for key, value in params.items():
        if key in ("hidden", "hidden_layers"):
            data["hidden_layers"] = parse_hidden(value)
        elif key == "features":
            data["features"] = [f for f in value.split(",") if f]
        elif key in INT_FIELDS:
            try:
                data[key] = int(value)
            except ValueError:
                raise FieldError(key, f"{value!r} is not a whole number")
        elif key in FLOAT_FIELDS:
            try:
                data[key] = float(value)
            except ValueError:
                raise FieldError(key, f"{value!r} is not a number")
        elif key in TEXT_FIELDS:
            data[key] = value
        elif not ignore_unknown:
            raise FieldError(key, "unknown setting")
    return validate_fields(data)


def validate_fields(data: dict) -> ConfigFields:
    return validate_model(ConfigFields, data)


def validate_model(model: type[BaseModel], data: dict):
    """model.model_validate(data), with the first problem raised as a FieldError naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise FieldError(field, err["msg"], code="invalid", name=field)


def to_query(cfg: SessionConfig) -> dict[str, str]:
    """The config as page-URL parameters: opening that URL rebuilds the same session."""
    # problem follows from the dataset, and regression has no class count: leave both out.
    skip = {"hidden_layers", "features", "data_seed", "problem"} | ({"classes"} if cfg.problem == "regression" else set())
    q = {k: str(v) for k, v in cfg.model_dump(exclude=skip).items()}
    q["hidden"] = ",".join(f"{h.units}:{h.activation}" for h in cfg.hidden_layers)
    q["features"] = ",".join(cfg.features)
    if cfg.data_seed is not None:
        q["data_seed"] = str(cfg.data_seed)
    return q
