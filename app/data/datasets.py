"""The dataset catalogue: specs, seeded generation, train/test split.

A Dataset holds X float64 (n, dims) and y (n,): int64 class indices in
[0, classes) for classification, float64 targets for regression.
Generation and splitting each draw from their own generator, derived from
(stream, seed), so changing the split never changes the points.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from app.data import plane
from app.data.digits import N_DIGITS, digits

PROBLEMS = ("classification", "regression")
MIN_POINTS = 4
MAX_NOISE = 0.5
GENERATE_STREAM, SPLIT_STREAM = 0, 1

Generator = Callable[[int, float, int, np.random.Generator], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    problem: str  # "classification" | "regression"
    dims: int
    classes: tuple[int, ...]  # allowed class counts; () for regression
    default_classes: int  # 0 for regression
    default_points: int
    generate: Generator  # (n, noise, classes, rng) -> (X, y)


@dataclass(frozen=True)
class Dataset:
    X: np.ndarray  # (n, dims) float64
    y: np.ndarray  # (n,) int64 classes or float64 targets
    problem: str
    classes: int  # 0 for regression
    dims: int

    def __post_init__(self):
        n = len(self.y)
        if self.problem not in PROBLEMS:
            raise ValueError(f"problem must be one of {PROBLEMS}, not {self.problem!r}")
        if self.X.shape != (n, self.dims) or self.y.shape != (n,):
            raise ValueError(f"X {self.X.shape} and y {self.y.shape} do not match {n} points of {self.dims} dims")


def _spec(name, problem, classes, default_classes, default_points, generate, dims=2):
    return DatasetSpec(name, problem, dims, classes, default_classes, default_points, generate)


_CLS, _REG = PROBLEMS
DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        _spec("circle", _CLS, (2,), 2, 500, plane.circle),
        _spec("xor", _CLS, (2,), 2, 500, plane.xor),
        _spec("gauss", _CLS, (2, 3, 4, 5), 2, 500, plane.gauss),
        _spec("spiral", _CLS, (2, 3, 4, 5), 2, 500, plane.spiral),
        _spec("moons", _CLS, (2,), 2, 500, plane.moons),
        _spec("reg-plane", _REG, (), 0, 1200, plane.reg_plane),
        _spec("reg-gauss", _REG, (), 0, 1200, plane.reg_gauss),
        _spec("digits", _CLS, (10,), 10, N_DIGITS, digits, dims=64),
    ]
}


def _rng(stream: int, seed: int) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    return np.random.default_rng([stream, int(seed)])


def _class_count(spec: DatasetSpec, classes: int | None) -> int:
    if spec.problem == _REG:
        if classes not in (None, 0):
            raise ValueError(f"{spec.name} is a regression dataset; it has no classes")
        return 0
    k = spec.default_classes if classes is None else classes
    if k not in spec.classes:
        allowed = ", ".join(map(str, spec.classes))
        raise ValueError(f"{spec.name} supports {allowed} classes, not {k}")
    return k


def make_dataset(name: str, *, n_points: int | None, noise: float, classes: int | None, seed: int) -> Dataset:
    """Deterministic for (name, n_points, noise, classes, seed); None → spec default."""
    spec = DATASETS.get(name)
    if spec is None:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    k = _class_count(spec, classes)
    n = spec.default_points if n_points is None else n_points
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < max(MIN_POINTS, k):
        raise ValueError(f"n_points must be an integer of at least {max(MIN_POINTS, k)}, not {n!r}")
    if not (0.0 <= noise <= MAX_NOISE):  # also rejects NaN
        raise ValueError(f"noise must be between 0 and {MAX_NOISE}, not {noise!r}")
    rng = _rng(GENERATE_STREAM, seed)
    X, y = spec.generate(int(n), float(noise), k, rng)
    # Generators emit points grouped by class; shuffle so order carries no label.
    order = rng.permutation(len(y))
    y_dtype = np.int64 if spec.problem == _CLS else np.float64
    return Dataset(
        X=np.ascontiguousarray(X[order], dtype=np.float64),
        y=np.ascontiguousarray(y[order], dtype=y_dtype),
        problem=spec.problem,
        classes=k,
        dims=spec.dims,
    )


def split_train_test(ds: Dataset, train_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Shuffle by seed; the first round(n·fraction) points train, the rest test.

    The train count is kept within [1, n-1] so both parts are non-empty.
    """
    n = len(ds.y)
    if n < 2:
        raise ValueError("need at least 2 points to split")
    if not (0.0 < train_fraction < 1.0):
        raise ValueError(f"train_fraction must be strictly between 0 and 1, not {train_fraction!r}")
    n_train = min(max(round(n * train_fraction), 1), n - 1)
    order = _rng(SPLIT_STREAM, seed).permutation(n)
    train, test = order[:n_train], order[n_train:]
    return (replace(ds, X=ds.X[train], y=ds.y[train]), replace(ds, X=ds.X[test], y=ds.y[test]))
