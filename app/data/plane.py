"""Synthetic 2-D datasets drawn on the TensorFlow-Playground plane [-6, 6]^2.

Every generator has the signature ``(n, noise, classes, rng) -> (X, y)`` with
X float64 of shape (n, 2) and y of shape (n,): int64 class indices in
[0, classes) for classification, float64 targets for regression.

Noise ν runs from 0 to 0.5 (0–50 %):
- classification (except gauss): each coordinate moves by uniform(-1, 1)·2ν,
  i.e. at most ±1 at 50 %; shapes stay inside radius 5, so X stays in [-6, 6]^2;
- gauss: ν widens the blobs (variance 0.5 + 7ν, so 0.5 … 4); points that
  would fall off the plane are redrawn;
- regression: points cover the plane uniformly and ν adds uniform(-1, 1)·ν to
  the target, whose clean value lies in [-1, 1], so |y| ≤ 1 + ν.

Classes are balanced: their sizes differ by at most one point.
"""

import numpy as np

PLANE = 6.0  # half-width of the plane
RADIUS = 5.0  # clean shapes stay within this, leaving room for jitter
JITTER = 2.0  # jitter half-width per unit of noise: ±1 at ν = 0.5


def balanced_labels(n: int, k: int) -> np.ndarray:
    """(n,) int64 labels 0..k-1, each class n//k or n//k + 1 times."""
    sizes = np.full(k, n // k) + (np.arange(k) < n % k)
    return np.repeat(np.arange(k, dtype=np.int64), sizes)


def _jitter(X: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    return X + rng.uniform(-1.0, 1.0, X.shape) * JITTER * noise


def _polar(r: np.ndarray, theta: np.ndarray) -> np.ndarray:
    return np.column_stack([r * np.cos(theta), r * np.sin(theta)])


def circle(n, noise, classes, rng):
    """Class 0: disc r ≤ R/2; class 1: ring 0.7R ≤ r ≤ R (a gap of 0.2R)."""
    y = balanced_labels(n, 2)
    r = np.where(y == 0, rng.uniform(0.0, 0.5 * RADIUS, n), rng.uniform(0.7 * RADIUS, RADIUS, n))
    X = _polar(r, rng.uniform(0.0, 2 * np.pi, n))
    return _jitter(X, noise, rng), y


def xor(n, noise, classes, rng):
    """Class 0 where x1·x2 > 0, class 1 where x1·x2 < 0; |x_i| ∈ [0.3, 5]."""
    y = balanced_labels(n, 2)
    # Padding keeps the clean classes apart along the axes, as in TF Playground.
    magnitude = rng.uniform(0.3, RADIUS, (n, 2))
    sign1 = rng.choice([-1.0, 1.0], n)
    sign2 = np.where(y == 0, sign1, -sign1)
    X = magnitude * np.column_stack([sign1, sign2])
    return _jitter(X, noise, rng), y


def gauss_centres(k: int) -> np.ndarray:
    """(k, 2) blob centres: (2, 2) and (-2, -2) for two, else a ring of radius 3.5."""
    if k == 2:
        return np.array([[2.0, 2.0], [-2.0, -2.0]])
    return _polar(np.full(k, 3.5), np.pi / 2 + 2 * np.pi * np.arange(k) / k)


def gauss(n, noise, classes, rng):
    y = balanced_labels(n, classes)
    centres = gauss_centres(classes)[y]
    sigma = np.sqrt(0.5 + 7.0 * noise)
    X = centres + rng.normal(0.0, sigma, (n, 2))
    # Redraw instead of clipping so no points pile up on the border.
    off = np.abs(X).max(axis=1) > PLANE
    while off.any():
        X[off] = centres[off] + rng.normal(0.0, sigma, (int(off.sum()), 2))
        off = np.abs(X).max(axis=1) > PLANE
    return X, y


def spiral(n, noise, classes, rng):
    """k arms r = R·s, θ = 1.75·2π·s + 2πc/k for s ∈ [0, 1]."""
    y = balanced_labels(n, classes)
    s = rng.uniform(0.0, 1.0, n)
    theta = 1.75 * 2 * np.pi * s + 2 * np.pi * y / classes
    X = _polar(RADIUS * s, theta)
    return _jitter(X, noise, rng), y


def moons(n, noise, classes, rng):
    """Two interleaving unit half-moons, centred and scaled to x ∈ [-5, 5]."""
    y = balanced_labels(n, 2)
    t = rng.uniform(0.0, np.pi, n)
    upper = np.column_stack([np.cos(t), np.sin(t)])
    lower = np.column_stack([1.0 - np.cos(t), 0.5 - np.sin(t)])
    unit = np.where((y == 0)[:, None], upper, lower)
    # The pair spans x ∈ [-1, 2], y ∈ [-0.5, 1]: centre it, stretch x to ±R.
    X = (unit - [0.5, 0.25]) * (RADIUS / 1.5)
    return _jitter(X, noise, rng), y


def _uniform_plane(n, rng):
    return rng.uniform(-PLANE, PLANE, (n, 2))


def reg_plane(n, noise, classes, rng):
    """Target (x1 + x2) / 12, a tilted plane spanning [-1, 1]."""
    X = _uniform_plane(n, rng)
    target = X.sum(axis=1) / (2 * PLANE)
    return X, target + rng.uniform(-1.0, 1.0, n) * noise


# (x, y, sign) of the bumps: a 3×2 checkerboard of hills and dips.
BUMPS = np.array(
    [[-4.0, 2.5, 1.0], [0.0, 2.5, -1.0], [4.0, 2.5, 1.0], [-4.0, -2.5, -1.0], [0.0, -2.5, 1.0], [4.0, -2.5, -1.0]]
)
BUMP_SIGMA = 1.5


def reg_gauss(n, noise, classes, rng):
    """Target Σ sign·exp(-|x - c|² / 2σ²) over the six bumps."""
    X = _uniform_plane(n, rng)
    d2 = ((X[:, None, :] - BUMPS[None, :, :2]) ** 2).sum(axis=2)
    target = (BUMPS[:, 2] * np.exp(-d2 / (2 * BUMP_SIGMA**2))).sum(axis=1)
    # Neighbouring bumps have opposite signs, so overlap only shrinks the peaks;
    # the clip just makes the [-1, 1] promise exact.
    target = np.clip(target, -1.0, 1.0)
    return X, target + rng.uniform(-1.0, 1.0, n) * noise
