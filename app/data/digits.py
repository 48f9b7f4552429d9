"""The 8×8 handwritten digits (UCI optdigits test set, see DIGITS.md).

``load_digits()`` gives the raw file: images uint8 (1797, 64) with values
0..16 and labels uint8 (1797,) with values 0..9. ``digits()`` is the
dataset generator: X float64 (n, 64) in [0, 1], y int64 (n,) in 0..9.

Noise ν adds gaussian pixel noise of standard deviation ν/2, clipped back
to [0, 1]; at ν = 0 the images are exact.
"""

from functools import cache
from importlib import resources

import numpy as np

N_DIGITS = 1797
MAX_PIXEL = 16.0


@cache
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Read digits.npz once per process; the arrays are read-only."""
    with resources.files(__package__).joinpath("digits.npz").open("rb") as fh:
        with np.load(fh) as npz:
            images, labels = npz["images"], npz["labels"]
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def balanced_subset(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of n samples taken round-robin over the classes in random order."""
    order = rng.permutation(len(labels))
    # rank[i] = how many samples of i's class come before i in the shuffled order
    rank = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = order[labels[order] == c]
        rank[members] = np.arange(len(members))
    return np.argsort(rank, kind="stable")[:n]


def digits(n, noise, classes, rng):
    images, labels = load_digits()
    if n > N_DIGITS:
        raise ValueError(f"digits has only {N_DIGITS} images, not {n}")
    pick = balanced_subset(labels, n, rng)
    X = images[pick] / MAX_PIXEL
    if noise > 0:
        X = np.clip(X + rng.normal(0.0, noise / 2, X.shape), 0.0, 1.0)
    return X, labels[pick].astype(np.int64)
