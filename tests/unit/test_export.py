"""Unit tests for app.export: the generated NumPy script reproduces Session.predict (run
as a separate process on CSV and imported as a module), imports nothing but numpy and
sys, rejects unknown names; the data CSV parses back to the session's data exactly."""

from __future__ import annotations

import ast
import csv
import importlib.util
import io
import subprocess
import sys

import numpy as np
import pytest

from app.export import ACTIVATION_SOURCE, data_csv, model_python
from app.nn.activations import ACTIVATIONS
from app.schema import ConfigFields, Limits, resolve
from app.training import Session

SETTINGS = Limits()

ALL_HIDDEN = ["relu", "elu", "gelu", "swish", "softplus", "leaky_relu", "sigmoid", "linear"]
CASES = {
    "circle": dict(),  # defaults: circle, 4 tanh → 2 tanh
    "spiral": dict(
        dataset="spiral",
        features=["x1", "x2", "x1sq", "x2sq", "sin_x1"],
        hidden_layers=[{"units": 3, "activation": a} for a in ALL_HIDDEN],
    ),
    "reg-gauss": dict(dataset="reg-gauss"),
    "digits": dict(dataset="digits", hidden_layers=[{"units": 16, "activation": "relu"}]),
}
_sessions: dict[str, Session] = {}


def session(name: str) -> Session:
    """Trained sessions, built once per test run (they are only read)."""
    if name not in _sessions:
        s = Session(resolve(None, ConfigFields(seed=1, **CASES[name]), SETTINGS))
        s.train(20)
        assert s.status != "diverged"
        _sessions[name] = s
    return _sessions[name]


def source_of(s: Session) -> str:
    return model_python(s.model_dict(), features=s.cfg.features if s.dims == 2 else None, problem=s.cfg.problem)


def load_module(path, name="exported_model"):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def points_csv(x: np.ndarray, header: list[str] | None) -> str:
    lines = [",".join(header)] if header else []
    lines += [",".join(repr(float(v)) for v in row) for row in x]
    return "\n".join(lines) + "\n"


def check_printed(s: Session, printed: str, x: np.ndarray):
    lines = printed.split()
    expected = s.predict(x)
    assert len(lines) == len(x)
    if s.cfg.problem == "classification":
        assert [int(v) for v in lines] == expected.argmax(axis=1).tolist()
    else:
        np.testing.assert_allclose([float(v) for v in lines], expected[:, 0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", CASES)
def test_script_reproduces_predictions(name, tmp_path):
    s = session(name)
    script = tmp_path / "model.py"
    script.write_text(source_of(s), encoding="utf-8")
    x = s.data.test.X
    # Vary the CSV form across cases: a header row for some, none for the others.
    header = (["x1", "x2"] if s.dims == 2 else s.input_names()) if name in ("circle", "reg-gauss") else None
    csv_path = tmp_path / "points.csv"
    csv_path.write_text(points_csv(x, header), encoding="utf-8")

    run = subprocess.run(
        [sys.executable, str(script), str(csv_path)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    check_printed(s, run.stdout, x)

    module = load_module(script, f"exported_{name.replace('-', '_')}")
    expected = s.predict(x)
    got = module.predict(x)
    if s.cfg.problem == "classification":
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
        np.testing.assert_array_equal(module.classify(x), expected.argmax(axis=1))
    else:
        assert got.shape == (len(x),)
        np.testing.assert_allclose(got, expected[:, 0], rtol=1e-12, atol=1e-12)
        assert not hasattr(module, "classify")
    assert module.ACTIVATIONS == [h.activation for h in s.cfg.hidden_layers] + [
        "softmax" if s.cfg.problem == "classification" else "linear"
    ]
    assert module.FEATURES == (s.cfg.features if s.dims == 2 else None)


def test_script_reads_the_data_export_from_stdin(tmp_path):
    """The data CSV (header, label and split columns) piped in: columns are picked by name."""
    s = session("spiral")
    script = tmp_path / "model.py"
    script.write_text(source_of(s), encoding="utf-8")
    run = subprocess.run(
        [sys.executable, str(script)],
        input=data_csv(s.data_dict(), problem="classification"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    check_printed(s, run.stdout, np.vstack([s.data.train.X, s.data.test.X]))


@pytest.mark.parametrize("name", CASES)
def test_generated_file_imports_only_numpy_and_sys(name):
    src = source_of(session(name))
    tree = ast.parse(src)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported == {"numpy", "sys"}
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not names & {"__import__", "exec", "eval", "compile"}
    doc = ast.get_docstring(tree)
    assert "MLP Playground" in doc and "a = f(x @ W + b)" in doc


def test_only_used_activations_and_features_are_defined():
    tree = ast.parse(source_of(session("circle")))
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"tanh", "softmax", "features", "predict", "classify"} <= defined
    assert not defined & {"relu", "sigmoid", "gelu", "swish", "elu", "softplus", "leaky_relu", "linear"}
    src = source_of(session("reg-gauss"))
    assert "def linear" in src and "def softmax" not in src and "sin(" not in src


def test_weights_round_trip_exactly():
    s = session("spiral")
    ns: dict = {}
    tree = ast.parse(source_of(s))
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id in ("WEIGHTS", "BIASES"):
            ns[node.targets[0].id] = ast.literal_eval(node.value)
    for l, (W, b) in enumerate(zip(s.model.W, s.model.b)):
        np.testing.assert_array_equal(np.array(ns["WEIGHTS"][l]), W)
        np.testing.assert_array_equal(np.array(ns["BIASES"][l]), b)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_source_matches_engine(name):
    """Each generated activation equals app.nn.activations bit for bit, extremes included."""
    src, helpers = ACTIVATION_SOURCE[name]
    ns = {"np": np}
    for h in helpers:
        exec(ACTIVATION_SOURCE[h][0], ns)
    exec(src, ns)
    z = np.concatenate([np.linspace(-50, 50, 2001), [-800.0, -40.0, -1e-300, 0.0, 1e-300, 40.0, 800.0]])
    z = np.stack([z, -z], axis=1)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(ns[name](z), ACTIVATIONS[name].f(z))


# --- rejection -----------------------------------------------------------------------------
def model_of(name="circle") -> dict:
    return session(name).model_dict()


def test_unknown_activation_rejected():
    m = model_of()
    m["layers"][0]["activation"] = 'tanh"; import os; os.system("x")  #'
    with pytest.raises(ValueError, match="activation"):
        model_python(m, features=["x1", "x2"], problem="classification")
    m = model_of()
    m["layers"][0]["activation"] = "softmax"  # not a hidden activation
    with pytest.raises(ValueError, match="activation"):
        model_python(m, features=["x1", "x2"], problem="classification")
    m = model_of()
    m["layers"][-1]["activation"] = "linear"  # classification needs a softmax output
    with pytest.raises(ValueError, match="output activation"):
        model_python(m, features=["x1", "x2"], problem="classification")


def test_unknown_feature_rejected():
    with pytest.raises(ValueError, match="unknown feature"):
        model_python(model_of(), features=["x1", "__import__('os')"], problem="classification")
    with pytest.raises(ValueError, match="features"):
        model_python(model_of(), features=["x1", "x2", "x1sq"], problem="classification")  # 3 names, 2 inputs


def test_bad_title_problem_and_numbers_rejected():
    for title in ['say """hi', "a\nb", "back\\slash", ""]:
        with pytest.raises(ValueError, match="title"):
            model_python(model_of(), features=["x1", "x2"], problem="classification", title=title)
    assert "Session abc-123_x" in model_python(
        model_of(), features=["x1", "x2"], problem="classification", title="Session abc-123_x"
    )
    with pytest.raises(ValueError, match="problem"):
        model_python(model_of(), features=["x1", "x2"], problem="ranking")
    m = model_of()
    m["layers"][0]["weights"][0][0] = None  # what json_safe makes of NaN: a diverged network
    with pytest.raises(ValueError, match="finite"):
        model_python(m, features=["x1", "x2"], problem="classification")
    m = model_of()
    m["layers"][1]["biases"].append(0.0)
    with pytest.raises(ValueError, match="biases"):
        model_python(m, features=["x1", "x2"], problem="classification")


# --- data_csv ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["spiral", "reg-gauss", "digits"])
def test_data_csv_round_trips(name):
    s = session(name)
    text = data_csv(s.data_dict(), problem=s.cfg.problem)
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    target = "label" if s.cfg.problem == "classification" else "target"
    raw = ["x1", "x2"] if s.dims == 2 else [f"p{i}" for i in range(64)]
    assert header == [*raw, target, "split"]
    d = s.data
    assert len(body) == len(d.train.y) + len(d.test.y)
    assert [r[-1] for r in body] == ["train"] * len(d.train.y) + ["test"] * len(d.test.y)
    x = np.array([[float(v) for v in r[: len(raw)]] for r in body])
    np.testing.assert_array_equal(x, np.vstack([d.train.X, d.test.X]))
    y = np.concatenate([d.train.y, d.test.y])
    if s.cfg.problem == "classification":
        assert [int(r[-2]) for r in body] == y.tolist()
    else:
        np.testing.assert_array_equal([float(r[-2]) for r in body], y)


def test_data_csv_rejects_bad_input():
    with pytest.raises(ValueError, match="problem"):
        data_csv({"train": {"x": [[0.0, 0.0]], "y": [0]}, "test": {"x": [], "y": []}}, problem="ranking")
    with pytest.raises(ValueError, match="integer"):
        data_csv({"train": {"x": [[0.0, 0.0]], "y": [0.5]}, "test": {"x": [], "y": []}}, problem="classification")
    with pytest.raises(ValueError, match="labels"):
        data_csv({"train": {"x": [[0.0, 0.0]], "y": []}, "test": {"x": [], "y": []}}, problem="classification")
