"""Fixtures for the JavaScript unit tests (tests/js), written by Python, the reference.

`make test-js` runs this file as a script into a fresh temporary directory and hands the
directory to `node --test tests/js/` in JS_FIXTURES; nothing generated is committed, so
the fixtures can never be stale (they follow the engine wherever it goes). As a pytest
module it checks that what the fixtures expect is right, against the model itself.

  heatmaps.json     real frames' heatmap blobs (FrameBuilder on small Sessions) and the
                    maps Python encoded into them, as the page's decoder must return them
  activations.json  the page's constants block and f(z) of every activation on a grid
  format.json       numbers as the page should write them
"""

from __future__ import annotations

import json
import math
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from app import frames
from app.data.features import expand
from app.nn import ACTIVATIONS, output
from app.numbers import rounded
from app.page_constants import page_constants
from app.schema import SessionConfig
from app.settings import Settings
from app.training import Session

# One case per kind of output map: p1 (two classes), top + conf (more), value (regression).
HEATMAP_CASES = {
    "two_classes": dict(dataset="xor", features=["x1", "x2", "x1x2"]),
    "three_classes": dict(dataset="spiral", classes=3, features=["x1", "x2", "sin_x1"]),
    "regression": dict(dataset="reg-gauss", problem="regression", classes=0),
}
Z_GRID = [*np.linspace(-8.0, 8.0, 161).tolist(), -40.0, -20.0, -1e-9, 0.0, 1e-9, 20.0, 40.0]


def session_for(case: str) -> Session:
    cfg = SessionConfig(
        seed=7,
        n_points=80,
        hidden_layers=[{"units": 3, "activation": "tanh"}, {"units": 2, "activation": "relu"}],
        **HEATMAP_CASES[case],
    )
    s = Session(cfg)
    s.train(5)  # trained a little: maps with structure, not just the initial weights'
    return s


def frame_and_encoded_maps(s: Session) -> tuple[dict, np.ndarray, np.ndarray]:
    """A real frame's heatmaps, and the two arrays of whole numbers FrameBuilder put into
    its blob (thumbnails, then the output maps), caught on their way into med_residuals."""
    with mock.patch.object(frames, "med_residuals", wraps=frames.med_residuals) as spy:
        heat = frames.FrameBuilder().build(s)["heatmaps"]
    (thumbs,), (maps,) = (c.args for c in spy.call_args_list)
    return heat, np.asarray(thumbs).astype(np.int64), np.asarray(maps).astype(np.int64)


def decoded_output_maps(names: list[str], maps: np.ndarray) -> list[np.ndarray]:
    """What the decoder returns for the output plot: [top, conf] or [value]. Two classes
    travel as p1 = p(class 1) in bytes; they are read with the many-class definitions
    of app/frames.py: top = argmax p, conf = (p_max − 1/K)/(1 − 1/K) with K = 2."""
    if names != ["p1"]:
        return list(maps)
    p1 = maps[0] / 255.0
    p = np.stack([1.0 - p1, p1])
    return [p.argmax(axis=0), np.rint((p.max(axis=0) - 0.5) / 0.5 * 255.0).astype(np.int64)]


def heatmap_fixture(case: str) -> dict:
    s = session_for(case)
    heat, thumbs, maps = frame_and_encoded_maps(s)
    ends = np.cumsum(s.model.sizes)
    per_layer = [thumbs[e - n : e] for n, e in zip(s.model.sizes, ends)]
    return {
        "case": case,
        "problem": s.cfg.problem,
        "units": s.model.sizes,
        "heatmaps": heat,
        "expected": {
            "thumb": heat["thumb"],
            "res": heat["res"],
            "thumbs": [[t.ravel().tolist() for t in layer] for layer in per_layer],
            "maps": [m.ravel().tolist() for m in decoded_output_maps(heat["maps"], maps)],
        },
    }


def activation_fixture() -> dict:
    z = np.array(Z_GRID)
    return {
        "constants": page_constants(Settings()),
        "z": Z_GRID,
        "f": {name: a.f(z).tolist() for name, a in ACTIVATIONS.items()},
    }


def fixed(x: float | None, digits: int) -> str:
    """x with `digits` decimals, halves rounded away from zero on x's exact binary value
    (as the page's toFixed does; Python's format would round them to even); "–" when
    missing or not finite, and no minus sign on a zero."""
    if x is None or not math.isfinite(x):
        return "–"
    if x == 0:
        x = 0.0
    return f"{Decimal(x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP):f}"


def format_fixture() -> dict:
    rng = np.random.default_rng(11)
    # What frames carry: values rounded to 4 significant digits, over many magnitudes.
    values = [
        *rounded(rng.normal(0, 1, 40) * 10.0 ** rng.integers(-5, 6, 40)),
        0.125,
        -0.125,
        2.5,
        0.0625,
        1 / 3,
        -1e-9,
        0.0,
        -0.0,
        123456.789,
        None,
        "NaN",
        "Infinity",
        "-Infinity",
    ]
    numbers = [
        {"x": v, "digits": d, "text": fixed(None if isinstance(v, str) else v, d)} for v in values for d in (2, 3, 4)
    ]
    shares = [k / n for n in (7, 40, 250) for k in range(0, n + 1, max(1, n // 9))] + [0.125, None]
    percents = [{"x": x, "text": "–" if x is None else fixed(x * 100, 1) + "%"} for x in shares]
    epochs = [0, 1, 7, 999, 1000, 12345, 123456, 999999, 1_000_000, 1_234_567, 2**31 - 1]
    return {
        "numbers": numbers,
        "percents": percents,
        "epochs": [{"n": n, "text": f"{n:07,}"} for n in epochs],
    }  # 6 digits and a comma


def write_fixtures(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "heatmaps.json": [heatmap_fixture(c) for c in HEATMAP_CASES],
        "activations.json": activation_fixture(),
        "format.json": format_fixture(),
    }
    paths = []
    for name, data in files.items():
        path = directory / name
        path.write_text(json.dumps(data, allow_nan=False))
        paths.append(path)
    return paths


# --- pytest: the fixtures' expectations hold for the model itself ------------------------


@pytest.mark.parametrize("case", list(HEATMAP_CASES))
def test_expected_thumbnails_are_every_neurons_value_at_the_thumbnail_points(case):
    s = session_for(case)
    fixture = heatmap_fixture(case)
    builder = frames.FrameBuilder()
    res, stride, off = builder.res, builder.stride, builder.offset
    axis = np.linspace(-6, 6, res)[off::stride]
    x1, x2 = np.meshgrid(axis, axis[::-1])  # top row first, as the blob's maps
    zs, acts = s.model.forward(expand(np.column_stack([x1.ravel(), x2.ravel()]), s.cfg.features))
    acts = [*acts, output(s.cfg.problem, zs[-1])]  # input, hidden…, then output probabilities or value
    for l, (layer, scales) in enumerate(zip(fixture["expected"]["thumbs"], fixture["heatmaps"]["scales"])):
        for j, (thumb, scale) in enumerate(zip(layer, scales)):
            value = (np.array(thumb) / 127.5 - 1.0) * scale
            # 7-bit thumbnails: one step is 2/127.5 of the scale, so half a step is the rounding error.
            assert value == pytest.approx(acts[l][:, j], abs=scale / 127.5 + 1e-4), (case, l, j)


@pytest.mark.parametrize("case", list(HEATMAP_CASES))
def test_expected_output_maps_are_the_models_prediction_on_the_grid(case):
    s = session_for(case)
    fixture = heatmap_fixture(case)
    res = fixture["expected"]["res"]
    zs, _ = s.model.forward(expand(frames.grid_points(res), s.cfg.features))
    out = output(s.cfg.problem, zs[-1])
    maps = [np.array(m) for m in fixture["expected"]["maps"]]
    if s.cfg.problem == "regression":
        (value,) = maps
        scale = fixture["heatmaps"]["output_scale"]
        assert (value / 127.5 - 1.0) * scale == pytest.approx(out[:, 0], abs=scale / 127.5 + 1e-4)
        return
    top, conf = maps
    k = out.shape[1]
    margin = np.sort(out, axis=1)[:, -1] - np.sort(out, axis=1)[:, -2]
    clear = margin > 0.01  # away from ties, where float32 and rounding may pick either class
    assert clear.mean() > 0.9
    assert np.array_equal(top[clear], out.argmax(axis=1)[clear])
    assert conf == pytest.approx((out.max(axis=1) - 1 / k) / (1 - 1 / k) * 255, abs=2.0)


def test_activation_fixture_covers_every_activation_the_page_is_sent():
    fixture = activation_fixture()
    assert [a["name"] for a in fixture["constants"]["activations"]] == list(fixture["f"])
    assert all(len(v) == len(Z_GRID) and all(math.isfinite(x) for x in v) for v in fixture["f"].values())


def test_fixed_follows_the_pages_rounding_rule():
    # Exact halves round away from zero; everything else to the nearest; no "-0.00" for a zero.
    assert [fixed(v, 2) for v in (0.125, -0.125, 0.124, 1 / 3, -0.0, -0.001, None, float("nan"))] == [
        "0.13",
        "-0.13",
        "0.12",
        "0.33",
        "0.00",
        "-0.00",
        "–",
        "–",
    ]


def test_write_fixtures(tmp_path):
    paths = write_fixtures(tmp_path / "fixtures")
    assert sorted(p.name for p in paths) == ["activations.json", "format.json", "heatmaps.json"]
    assert all(json.loads(p.read_text()) for p in paths)


if __name__ == "__main__":
    # make test-js: python tests/unit/test_js_fixtures.py DIRECTORY
    if len(sys.argv) != 2:
        sys.exit("usage: test_js_fixtures.py DIRECTORY")
    for path in write_fixtures(Path(sys.argv[1])):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
