"""Input features for 2-D data: the input layer's neurons.

x (n, 2) raw points in [−6, 6]² → (n, len(names)) feature matrix, one column per name,
in the order given. The names are fixed by the API contract.
"""

from __future__ import annotations

import numpy as np

FEATURES = {
    "x1": lambda x: x[:, 0],
    "x2": lambda x: x[:, 1],
    "x1sq": lambda x: x[:, 0] ** 2,
    "x2sq": lambda x: x[:, 1] ** 2,
    "x1x2": lambda x: x[:, 0] * x[:, 1],
    "sin_x1": lambda x: np.sin(x[:, 0]),
    "sin_x2": lambda x: np.sin(x[:, 1]),
}

LABELS = {
    "x1": "X₁",
    "x2": "X₂",
    "x1sq": "X₁²",
    "x2sq": "X₂²",
    "x1x2": "X₁X₂",
    "sin_x1": "sin(X₁)",
    "sin_x2": "sin(X₂)",
}


def expand(x: np.ndarray, names: list[str]) -> np.ndarray:
    """Feature matrix (n, len(names)) for raw 2-D points x (n, 2)."""
    return np.stack([FEATURES[name](x) for name in names], axis=1)
