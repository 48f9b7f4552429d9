"""Exports: a trained network as a standalone NumPy script, and the data as CSV.

Pure functions of `Session.model_dict()` / `Session.data_dict()` output; no HTTP.

`model_python` writes Python source, so nothing from a user goes into it verbatim:
feature and activation names are checked against the fixed tables (ValueError
otherwise), numbers are written with `repr(float)` (exact round trip), the title
must be plain ASCII words, and every other piece of the file is a fixed template.
Each activation is written out from its formula with the same constants and the
same operation order as app/nn/activations.py, so the script's predictions equal
the server's to the last bit (on the same NumPy/BLAS).
"""

from __future__ import annotations

import csv
import io
import math
import re

from app.data.features import FEATURES as KNOWN_FEATURES
from app.nn.activations import _GELU_C, ELU_ALPHA, LEAKY_SLOPE
from app.nn.activations import ACTIVATIONS as KNOWN_ACTIVATIONS
from app.nn.losses import OUTPUT_ACTIVATION

PROBLEMS = tuple(OUTPUT_ACTIVATION)  # classification, regression
_TITLE = re.compile(r"[A-Za-z0-9 _.,:()#/+-]{1,120}")

# --- source snippets for the generated file ---------------------------------------------
# Feature name -> expression of the raw points x (n, 2); mirrors app/data/features.py.
FEATURE_SOURCE = {
    "x1": "x[:, 0]",
    "x2": "x[:, 1]",
    "x1sq": "x[:, 0] ** 2",
    "x2sq": "x[:, 1] ** 2",
    "x1x2": "x[:, 0] * x[:, 1]",
    "sin_x1": "np.sin(x[:, 0])",
    "sin_x2": "np.sin(x[:, 1])",
}

_SIGMOID = '''def sigmoid(z):
    """1 / (1 + e^-z), split by sign so that exp never overflows."""
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out
'''

# Activation name -> (definition source, helpers it needs). Mirrors app/nn/activations.py.
ACTIVATION_SOURCE: dict[str, tuple[str, tuple[str, ...]]] = {
    "relu": (
        '''def relu(z):
    """max(0, z)"""
    return np.maximum(z, 0.0)
''',
        (),
    ),
    "tanh": (
        '''def tanh(z):
    """tanh(z)"""
    return np.tanh(z)
''',
        (),
    ),
    "sigmoid": (_SIGMOID, ()),
    "linear": (
        '''def linear(z):
    """z (the identity)"""
    return z
''',
        (),
    ),
    "leaky_relu": (
        f'''LEAKY_SLOPE = {LEAKY_SLOPE!r}


def leaky_relu(z):
    """z if z > 0 else LEAKY_SLOPE * z"""
    return np.where(z > 0, z, LEAKY_SLOPE * z)
''',
        (),
    ),
    "elu": (
        f'''ELU_ALPHA = {ELU_ALPHA!r}


def elu(z):
    """z if z > 0 else ELU_ALPHA * (e^z - 1)"""
    return np.where(z > 0, z, ELU_ALPHA * np.expm1(np.minimum(z, 0.0)))
''',
        (),
    ),
    "gelu": (
        f'''GELU_C = {_GELU_C!r}  # sqrt(2 / pi)


def gelu(z):
    """z * Phi(z), tanh approximation: 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))"""
    return 0.5 * z * (1.0 + np.tanh(GELU_C * (z + 0.044715 * z**3)))
''',
        (),
    ),
    "softplus": (
        '''def softplus(z):
    """log(1 + e^z) = max(z, 0) + log1p(e^-|z|), stable for large |z|"""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))
''',
        (),
    ),
    "swish": (
        '''def swish(z):
    """z * sigmoid(z)"""
    return z * sigmoid(z)
''',
        ("sigmoid",),
    ),
    "softmax": (
        '''def softmax(z):
    """Row-wise e^z / sum(e^z); subtracting the row max keeps exp from overflowing."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
''',
        (),
    ),
}


# --- validation -----------------------------------------------------------------------------
def _number(v, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{where}: expected a finite number, got {v!r} (has the network diverged?)")
    return float(v)


def _matrix(rows, where: str) -> list[list[float]]:
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        raise ValueError(f"{where}: expected a non-empty list of rows")
    width = len(rows[0])
    if width == 0 or any(len(r) != width for r in rows):
        raise ValueError(f"{where}: rows must be non-empty and of equal length")
    return [[_number(v, where) for v in r] for r in rows]


def _layers(model_dict: dict, problem: str) -> tuple[list, list, list[str]]:
    """(weights, biases, activation names), checked for shape, finiteness and known names."""
    if problem not in PROBLEMS:
        raise ValueError(f"unknown problem {problem!r}; expected one of {PROBLEMS}")
    layers = model_dict.get("layers") if isinstance(model_dict, dict) else None
    if not isinstance(layers, list) or not layers:
        raise ValueError("model has no layers")
    Ws: list[list] = []
    bs: list[list] = []
    acts: list[str] = []
    for l, layer in enumerate(layers):
        W = _matrix(layer.get("weights"), f"layer {l} weights")
        b = layer.get("biases")
        if not isinstance(b, list):
            raise ValueError(f"layer {l} biases: expected a list")
        b = [_number(v, f"layer {l} biases") for v in b]
        if len(b) != len(W[0]):
            raise ValueError(f"layer {l}: {len(b)} biases for {len(W[0])} units")
        if Ws and len(W) != len(Ws[-1][0]):
            raise ValueError(f"layer {l}: {len(W)} inputs but the layer below has {len(Ws[-1][0])} units")
        act = layer.get("activation")
        last = l == len(layers) - 1
        if last and act != OUTPUT_ACTIVATION[problem]:
            raise ValueError(f"output activation must be {OUTPUT_ACTIVATION[problem]!r} for {problem}, not {act!r}")
        if not last and act not in KNOWN_ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r} in layer {l}")
        Ws.append(W)
        bs.append(b)
        acts.append(act)
    if problem == "regression" and len(bs[-1]) != 1:
        raise ValueError("a regression network has one output unit")
    return Ws, bs, acts


# --- model_python -----------------------------------------------------------------------------
def _literal(values, indent: str) -> str:
    """A nested list of floats as source, one row per line; repr(float) round-trips exactly."""
    if values and isinstance(values[0], list):
        inner = indent + "    "
        return "[\n" + "".join(f"{inner}{_literal(v, inner)},\n" for v in values) + indent + "]"
    return "[" + ", ".join(repr(v) for v in values) + "]"


# The generated program; str.format fills the {names} ({{ }} are literal braces).
PROGRAM = '''"""{title}: a neural network exported from MLP Playground.

A {problem} multi-layer perceptron, {shape}.
This file needs only NumPy; it computes exactly what the playground computed when
the model was exported.

Every layer computes  a = f(x @ W + b):  x (n, d_in) are the previous layer's outputs
(the input features for the first layer), W = WEIGHTS[l] has shape (d_in, d_out),
b = BIASES[l] has d_out entries and f = ACTIVATIONS[l] acts elementwise (softmax acts
on each row). The last layer is {last_layer}.

{input_doc}
{out_doc}

Usage:
    python this_file.py points.csv      (or read the CSV from standard input)
The CSV has columns {csv_columns}; a header row is optional. With a header, the
columns are picked by name, so the playground's data export can be passed as is.
"""
import sys

import numpy as np

PROBLEM = "{problem}"
RAW_INPUTS = {raw_repr}  # columns of a raw point
FEATURES = {features_repr}  # what the network sees; None: the raw inputs themselves
ACTIVATIONS = {acts_repr}

WEIGHTS = {weights}

BIASES = {biases}


# --- activations: f in a = f(x @ W + b) ---------------------------------------------

{act_defs}

_F = {{{act_table}}}

# --- input features -------------------------------------------------------------------

_FEATURE = {feat_src}


def features(points):
    """Raw points (n, {n_raw}) -> the network's inputs (n, {d0})."""
    x = np.asarray(points, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != len(RAW_INPUTS):
        raise ValueError(f"expected points of shape (n, {{len(RAW_INPUTS)}}), got {{x.shape}}")
    if FEATURES is None:
        return x
    return np.stack([_FEATURE[name](x) for name in FEATURES], axis=1)


# --- the network ----------------------------------------------------------------------

_W = [np.array(W, dtype=float) for W in WEIGHTS]
_B = [np.array(b, dtype=float) for b in BIASES]


def predict(points):
    """{predict_doc} for raw points (n, {n_raw})."""
    a = features(points)
    for W, b, name in zip(_W, _B, ACTIVATIONS):
        a = _F[name](a @ W + b)
    return a{predict_tail}
{classify_src}

# --- command line -----------------------------------------------------------------------

def read_points(text):
    """Raw points from CSV text: columns RAW_INPUTS, optional header row."""
    rows = [[f.strip().strip('"') for f in line.split(",")] for line in text.splitlines() if line.strip()]
    if not rows:
        return np.empty((0, len(RAW_INPUTS)))
    columns = list(range(len(RAW_INPUTS)))
    try:
        [float(rows[0][i]) for i in columns]
    except (ValueError, IndexError):  # not numbers: a header
        header = [name.lower() for name in rows.pop(0)]
        missing = [name for name in RAW_INPUTS if name not in header]
        if missing:
            raise SystemExit(f"the CSV header lacks the column(s) {{', '.join(missing)}}")
        columns = [header.index(name) for name in RAW_INPUTS]
    points = []
    for n, row in enumerate(rows, 1):
        try:
            points.append([float(row[i]) for i in columns])
        except (ValueError, IndexError):
            raise SystemExit(f"data row {{n}}: expected numbers in {{len(RAW_INPUTS)}} columns, got {{row}}")
    return np.array(points, dtype=float).reshape(-1, len(RAW_INPUTS))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] != "-":
        with open(sys.argv[1], encoding="utf-8-sig") as fh:
            source = fh.read()
    else:
        source = sys.stdin.read()
    points = read_points(source)
    if len(points):
        {main_out}
'''


def _checked_features(features: list[str] | None, d0: int) -> list[str] | None:
    if features is None:
        return None
    features = list(features)
    unknown = [f for f in features if f not in KNOWN_FEATURES]
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown!r}; known: {list(KNOWN_FEATURES)}")
    if not features or len(set(features)) != len(features):
        raise ValueError("features must be a non-empty list without repeats")
    if len(features) != d0:
        raise ValueError(f"{len(features)} features but the first layer has {d0} inputs")
    return features


def model_python(
    model_dict: dict, *, features: list[str] | None, problem: str, title: str = "MLP Playground model"
) -> str:
    """Source text of a standalone NumPy script reproducing the network's predictions.

    features: the feature names (x1, x2, x1sq, …) when the raw input is a 2-D point,
    None when the raw input goes to the network as is (digits: 64 pixels).
    Raises ValueError for unknown names, a bad title, shapes that do not chain or
    non-finite numbers.
    """
    if not isinstance(title, str) or not _TITLE.fullmatch(title):
        raise ValueError("title may hold only ASCII letters, digits, spaces and _.,:()#/+- (at most 120)")
    Ws, bs, acts = _layers(model_dict, problem)
    d0 = len(Ws[0])
    features = _checked_features(features, d0)
    raw = ["x1", "x2"] if features is not None else [f"p{i}" for i in range(d0)]

    # Helpers first (sigmoid before swish), then each used activation once, in a fixed order.
    needed = {a for a in acts}
    needed |= {h for a in acts for h in ACTIVATION_SOURCE[a][1]}
    act_defs = "\n\n".join(ACTIVATION_SOURCE[a][0] for a in ACTIVATION_SOURCE if a in needed)
    act_table = ", ".join(f'"{a}": {a}' for a in ACTIVATION_SOURCE if a in set(acts))

    sizes = [d0] + [len(b) for b in bs]
    shape = " -> ".join([f"{d0} inputs"] + [f"{n} {a}" for n, a in zip(sizes[1:], acts)])
    return PROGRAM.format(
        title=title, problem=problem, shape=shape, d0=d0, n_raw=len(raw), raw_repr=repr(raw),
        features_repr=repr(features), acts_repr=repr(acts), weights=_literal(Ws, ""), biases=_literal(bs, ""),
        act_defs=act_defs, act_table=act_table,
        csv_columns=", ".join(raw) if len(raw) <= 4 else f"{raw[0]}, …, {raw[-1]}",
        **_input_text(features, raw), **PROBLEM_TEXT[problem],
    )  # fmt: skip


def _input_text(features: list[str] | None, raw: list[str]) -> dict[str, str]:
    """The program's feature table and how its docstring describes the input."""
    if features is None:
        return {
            "feat_src": "{}",
            "input_doc": f"The raw input is a row of {len(raw)} numbers ({raw[0]} … {raw[-1]}) fed to the network as is.",
        }
    return {"feat_src": "{\n" + "".join(f'    "{f}": lambda x: {FEATURE_SOURCE[f]},\n' for f in features) + "}",
            "input_doc": "The raw input is a 2-D point (x1, x2); the network sees the features\n"
                         f"{', '.join(features)} computed from it by features()."}  # fmt: skip


# What the generated program says and does differently for each kind of problem.
PROBLEM_TEXT = {
    "classification": {
        "out_doc": "predict(points) gives class probabilities (n, classes); classify(points) the most\n"
        "probable class index. Run as a script, it prints one class index per line.",
        "main_out": "for k in classify(points):\n            print(int(k))",
        "classify_src": '''

def classify(points):
    """The most probable class index for each point: (n,) integers."""
    return predict(points).argmax(axis=1)
''',
        "last_layer": "softmax, giving class probabilities",
        "predict_doc": "Class probabilities (n, classes)",
        "predict_tail": "",
    },
    "regression": {
        "out_doc": "predict(points) gives the predicted value for each point, shape (n,).\n"
        "Run as a script, it prints one value per line.",
        "main_out": "for v in predict(points):\n            print(repr(float(v)))",
        "classify_src": "",
        "last_layer": "linear, giving the predicted value",
        "predict_doc": "Predicted values (n,)",
        "predict_tail": "[:, 0]",
    },
}


# --- data_csv ---------------------------------------------------------------------------------
def data_csv(data_dict: dict, *, problem: str) -> str:
    """CSV of the raw data: x1,x2 (or p0…p63),label|target,split; train rows, then test rows.

    Floats are written with repr (exact round trip); class labels as integers.
    """
    if problem not in PROBLEMS:
        raise ValueError(f"unknown problem {problem!r}; expected one of {PROBLEMS}")
    parts = [(name, data_dict.get(name) or {"x": [], "y": []}) for name in ("train", "test")]
    dims = next((len(p["x"][0]) for _, p in parts if p["x"]), 2)
    cols = ["x1", "x2"] if dims == 2 else [f"p{i}" for i in range(dims)]
    target = "label" if problem == "classification" else "target"
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([*cols, target, "split"])
    for name, part in parts:
        if len(part["x"]) != len(part["y"]):
            raise ValueError(f"{name}: {len(part['x'])} points but {len(part['y'])} labels")
        for x, y in zip(part["x"], part["y"]):
            if len(x) != dims:
                raise ValueError(f"{name}: a point with {len(x)} values, expected {dims}")
            values = [repr(_number(v, name)) for v in x]
            if problem == "classification":
                label = _number(y, f"{name} label")
                if not label.is_integer():
                    raise ValueError(f"{name}: class label {y!r} is not an integer")
                values.append(str(int(label)))
            else:
                values.append(repr(_number(y, f"{name} target")))
            w.writerow([*values, name])
    return out.getvalue()
