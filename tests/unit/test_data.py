"""Tests for app.data: the dataset generators, the split, the digits file and CSV uploads."""

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from app.data import DATASETS, CsvError, Dataset, make_dataset, parse_csv, split_train_test
from app.data.csv_upload import fit_to_plane
from app.data.digits import load_digits

ROOT = Path(__file__).resolve().parents[2]

PLANE_SETS = [name for name, s in DATASETS.items() if s.dims == 2]
CASES = [(name, k) for name, s in DATASETS.items() for k in (s.classes or (None,))]
CASE_IDS = [f"{name}-{k}" for name, k in CASES]


def make(name, k=None, noise=0.0, seed=0, n=None):
    return make_dataset(name, n_points=n, noise=noise, classes=k, seed=seed)


def nearest_neighbour(train: Dataset, X: np.ndarray) -> np.ndarray:
    """1-NN prediction: the y of the closest training point."""
    d2 = ((X[:, None, :] - train.X[None, :, :]) ** 2).sum(axis=2)
    return train.y[d2.argmin(axis=1)]


# --- the catalogue and generation -------------------------------------------------


def test_catalogue_order_and_defaults():
    assert list(DATASETS) == ["circle", "xor", "gauss", "spiral", "moons", "reg-plane", "reg-gauss", "digits"]
    for name, spec in DATASETS.items():
        assert spec.name == name
        if spec.problem == "regression":
            assert (spec.classes, spec.default_classes, spec.default_points) == ((), 0, 1200)
        else:
            assert spec.default_classes in spec.classes
    assert DATASETS["gauss"].classes == DATASETS["spiral"].classes == (2, 3, 4, 5)
    assert DATASETS["digits"].classes == (10,)


@pytest.mark.parametrize("name,k", CASES, ids=CASE_IDS)
def test_shapes_dtypes_and_ranges_at_full_noise(name, k):
    spec = DATASETS[name]
    ds = make(name, k, noise=0.5, seed=3)
    n = spec.default_points
    assert ds.X.shape == (n, spec.dims) and ds.X.dtype == np.float64
    assert ds.y.shape == (n,) and ds.problem == spec.problem and ds.dims == spec.dims
    assert np.isfinite(ds.X).all()
    if spec.dims == 2:
        assert np.abs(ds.X).max() <= 6.0  # the plane; jitter is sized not to leave it
    if spec.problem == "regression":
        assert ds.y.dtype == np.float64 and ds.classes == 0
        assert np.isfinite(ds.y).all() and np.abs(ds.y).max() <= 1.5  # |clean| ≤ 1, noise ≤ 0.5
    else:
        assert ds.y.dtype == np.int64 and ds.classes == k
        counts = np.bincount(ds.y, minlength=k)
        assert len(counts) == k and counts.min() > 0
        if spec.dims == 2:
            assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("name,k", CASES, ids=CASE_IDS)
def test_deterministic_for_its_seed(name, k):
    a, b, c = (make(name, k, noise=0.2, seed=s, n=300) for s in (7, 7, 8))
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.X, c.X)


@pytest.mark.parametrize("name", list(DATASETS))
def test_noise_changes_the_points(name):
    clean, noisy = make(name, noise=0.0, seed=1), make(name, noise=0.3, seed=1)
    assert not (np.array_equal(clean.X, noisy.X) and np.array_equal(clean.y, noisy.y))


@pytest.mark.parametrize("name", [n for n, s in DATASETS.items() if s.problem == "classification"])
def test_order_carries_no_label(name):
    ds = make(name, seed=2)
    # Grouped labels would change class a handful of times; shuffled ones often.
    assert (np.diff(ds.y) != 0).mean() > 0.3


def test_n_points_and_defaults():
    assert len(make("spiral", 3, n=37).y) == 37
    assert make("gauss").classes == 2 and make("digits").classes == 10
    assert make("reg-gauss", 0).classes == 0


@pytest.mark.parametrize(
    "name,bad",
    [
        ("circle", 3),
        ("xor", 1),
        ("moons", 5),
        ("gauss", 1),
        ("gauss", 6),
        ("spiral", 0),
        ("spiral", 6),
        ("digits", 2),
        ("digits", 9),
        ("reg-plane", 2),
    ],
)
def test_unsupported_classes_raise(name, bad):
    with pytest.raises(ValueError, match="class"):
        make(name, bad)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"name": "blobs"}, "unknown dataset"),
        ({"n": 3}, "n_points"),
        ({"name": "gauss", "k": 5, "n": 4}, "n_points"),
        ({"name": "digits", "n": 1798}, "1797"),
        ({"noise": -0.1}, "noise"),
        ({"noise": 0.51}, "noise"),
        ({"noise": float("nan")}, "noise"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    args = {"name": "circle", **kwargs}
    with pytest.raises(ValueError, match=match):
        make(args.pop("name"), **args)


# --- learnability without a network ---------------------------------------------


@pytest.mark.parametrize("name", PLANE_SETS)
def test_clean_plane_sets_are_learnable_by_1nn(name):
    train, test = split_train_test(make(name, noise=0.0, seed=5), 0.5, seed=5)
    predicted = nearest_neighbour(train, test.X)
    if train.problem == "classification":
        assert (predicted == test.y).mean() >= 0.95
    else:
        r2 = 1 - ((predicted - test.y) ** 2).sum() / ((test.y - test.y.mean()) ** 2).sum()
        assert r2 >= 0.9


def test_digits_are_learnable_by_1nn():
    train, test = split_train_test(make("digits", n=600, seed=1), 0.5, seed=1)
    assert (nearest_neighbour(train, test.X) == test.y).mean() >= 0.9


# --- split ------------------------------------------------------------------------


def rows(ds):
    return {tuple(row) for row in ds.X}


@pytest.mark.parametrize("n,fraction,n_train", [(500, 0.8, 400), (10, 0.55, 6), (7, 0.01, 1), (7, 0.99, 6)])
def test_split_sizes_partition_and_determinism(n, fraction, n_train):
    ds = make("xor", n=n, noise=0.1, seed=4)
    assert len(rows(ds)) == n  # rows are distinct, so row identity tracks points
    train, test = split_train_test(ds, fraction, seed=9)
    assert (len(train.y), len(test.y)) == (n_train, n - n_train)
    assert rows(train).isdisjoint(rows(test)) and rows(train) | rows(test) == rows(ds)
    # each point keeps its own label
    label = {tuple(x): y for x, y in zip(ds.X, ds.y)}
    assert all(label[tuple(x)] == y for part in (train, test) for x, y in zip(part.X, part.y))
    again = split_train_test(ds, fraction, seed=9)[0]
    assert np.array_equal(train.X, again.X) and np.array_equal(train.y, again.y)
    assert (train.problem, train.classes, train.dims) == (ds.problem, ds.classes, ds.dims)


def test_split_depends_on_seed_and_rejects_bad_fractions():
    ds = make("circle", seed=0)
    assert not np.array_equal(split_train_test(ds, 0.5, 1)[0].X, split_train_test(ds, 0.5, 2)[0].X)
    for bad in (0.0, 1.0, -0.5, float("nan")):
        with pytest.raises(ValueError, match="train_fraction"):
            split_train_test(ds, bad, 0)


# --- digits -----------------------------------------------------------------------


def test_digits_file_is_the_known_copy():
    images, labels = load_digits()
    assert images.shape == (1797, 64) and images.dtype == np.uint8 and labels.dtype == np.uint8
    assert images.max() == 16 and images.min() == 0
    # Class counts of the 1,797-image UCI test set, as read from scikit-learn's copy.
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # The conversion recorded in DIGITS.md produced exactly these bytes.
    assert hashlib.sha256(images.tobytes()).hexdigest() == (
        "8f26b2bd9d135c256808f68f14fdabddde6d9c7f869ae419704b051f0f14b3b3"
    )
    assert hashlib.sha256(labels.tobytes()).hexdigest() == (
        "8ba4f891220f5e4c9c819638d1602d74b83618f167043c6da52a2a247841ddf0"
    )
    assert load_digits() is load_digits()  # cached: one load per process


def test_digits_dataset_scaling_subset_and_noise():
    full = make("digits")
    assert full.X.shape == (1797, 64) and full.X.min() == 0.0 and full.X.max() == 1.0
    assert np.array_equal(full.X * 16, np.round(full.X * 16))  # exact pixels at noise 0
    assert np.bincount(full.y).min() >= 170
    subset = make("digits", n=100, seed=3)
    assert np.bincount(subset.y, minlength=10).tolist() == [10] * 10
    noisy = make("digits", noise=0.5, n=200)
    assert 0.0 <= noisy.X.min() and noisy.X.max() <= 1.0
    assert not np.array_equal(noisy.X * 16, np.round(noisy.X * 16))


# --- CSV upload ---------------------------------------------------------------------

LIMITS = {"max_bytes": 10_000, "max_rows": 100}
SQUARE = "1,1,{a}\n-1,1,{b}\n-1,-1,{a}\n1,-1,{b}\n"


def parse(text, **kwargs):
    raw = text if isinstance(text, bytes) else text.encode()
    return parse_csv(raw, **{**LIMITS, **kwargs})


@pytest.mark.parametrize(
    "text",
    [
        "x1,x2,label\n" + SQUARE.format(a=0, b=1),
        SQUARE.format(a=0, b=1),
        ("X1,X2,Class\n" + SQUARE.format(a=0, b=1)).replace("\n", "\r\n"),
        "\ufeff" + SQUARE.format(a=0, b=1),
        "\n\n" + SQUARE.format(a=0, b=1).replace("\n", "\n\n"),
        SQUARE.format(a="cat", b="dog"),
        SQUARE.format(a=" 3 ", b="7.0"),
        SQUARE.format(a=0, b=1).replace(",", ";"),
        SQUARE.format(a=0, b=1).replace(",", "\t"),
    ],
)
def test_good_classification_files(text):
    ds = parse(text)
    assert ds.problem == "classification" and ds.classes == 2 and ds.dims == 2
    assert ds.y.dtype == np.int64 and ds.y.tolist() == [0, 1, 0, 1]
    assert ds.X.tolist() == [[1, 1], [-1, 1], [-1, -1], [1, -1]]


def test_labels_sort_numerically_when_numeric_else_as_text():
    assert parse(SQUARE.format(a=10, b=2)).y.tolist() == [1, 0, 1, 0]
    assert parse(SQUARE.format(a="b", b="a")).y.tolist() == [1, 0, 1, 0]
    assert parse(SQUARE.format(a="1", b="1.0") + "0,0,2\n").classes == 2


def test_regression_files_and_problem_override():
    text = "1,1,0.5\n-1,1,-0.25\n-1,-1,0.1\n1,-1,0.75\n"
    for ds in (parse(text), parse("x1,x2,target\n" + text)):
        assert ds.problem == "regression" and ds.classes == 0 and ds.y.dtype == np.float64
        assert ds.y.tolist() == [0.5, -0.25, 0.1, 0.75]
    labelled = "x1,x2,target\n" + SQUARE.format(a=0, b=1)
    assert parse(labelled).problem == "regression"
    assert parse(labelled, problem="classification").problem == "classification"
    assert parse(SQUARE.format(a=0, b=1), problem="regression").y.tolist() == [0, 1, 0, 1]
    many_integers = "".join(f"{i},0,{i}\n" for i in range(11))
    assert parse(many_integers).problem == "regression"  # > 10 distinct values
    with pytest.raises(ValueError, match="problem"):
        parse(text, problem="clustering")


def test_large_values_are_rescaled():
    ds = parse("0,0,4\n100,0,-2\n100,50,1\n0,50,0.5\n")
    assert np.allclose(ds.X, [[-6, -3], [6, -3], [6, 3], [-6, 3]])  # one factor, centred
    assert ds.y.tolist() == [1.0, -0.5, 0.25, 0.125]  # divided by max |target|
    assert np.array_equal(fit_to_plane(np.array([[5.0, -6.0]])), [[5.0, -6.0]])
    assert np.array_equal(fit_to_plane(np.array([[9.0, 9.0], [9.0, 9.0]])), [[0, 0], [0, 0]])


GOOD = SQUARE.format(a=0, b=1)
BAD_FILES = [
    # (file, line, words the message must contain, limits)
    (GOOD + "5,6\n", 5, ["3 columns", "found 2"], {}),
    (GOOD + "5,6,1,9\n", 5, ["3 columns", "found 4"], {}),
    ("x1,x2,label\n" + GOOD + "1,abc,0\n", 6, ["column 2", "not a number", "abc"], {}),
    ("x1,x2,label\n\n1,2,0\r\n1_0,2,1\n" + GOOD, 4, ["column 1", "not a number"], {}),
    (GOOD + "nan,1,0\n", 5, ["column 1", "finite", "nan"], {}),
    (GOOD + "1,-inf,0\n", 5, ["column 2", "finite", "inf"], {}),
    ("x1,x2,target\n1,2,0.5\n1,2,oops\n" + GOOD, 3, ["column 3 (target)", "finite"], {}),
    ("x1,x2,label\n1,2,\n" + GOOD, 2, ["column 3", "empty"], {}),
    ("x1,x2,label\n" + GOOD * 2, 7, ["too many rows", "5"], {"max_rows": 5}),
    (GOOD, None, ["larger than the limit of 10 bytes"], {"max_bytes": 10}),
    (SQUARE.format(a="z", b="z"), None, ["one class", "at least 2"], {}),
    ("".join(f"{i},0,{chr(97 + i)}\n" for i in range(11)), 11, ["too many classes", "10"], {}),
    ("x1,x2,label\n" + GOOD[:-1].rsplit("\n", 1)[0] + "\n", None, ["at least 4", "found 3"], {}),
    ("1,2,x\n3,oops,1\n", 2, ["column 2 (x2)", "not a number", "oops"], {}),  # the bad number, not "too few"
    ("a,b,c\n" + GOOD, 1, ["header", "label", "target"], {}),
    (GOOD + "1,2," + "a" * 200_000 + "\n", 5, ["cannot split"], {"max_bytes": 10**6}),
    ("", None, ["empty"], {}),
    ("\r\n \n\n", None, ["empty"], {}),
    (b"1,2,0\n\x00\xff\xfe\x80garbage", 2, ["UTF-8"], {}),
    (b"PK\x03\x04\x14\x00\x06\x00", 1, ["binary"], {}),
]


@pytest.mark.parametrize("text,line,words,limits", BAD_FILES, ids=[f"bad{i}" for i in range(len(BAD_FILES))])
def test_bad_files_name_the_line_and_problem(text, line, words, limits):
    with pytest.raises(CsvError) as caught:
        parse(text, **limits)
    err = caught.value
    assert isinstance(err, ValueError) and err.line == line
    for word in words:
        assert word in err.message
    # The page says it in the reader's language: each catalog's text has all its values.
    for lang in ("en", "ja"):
        template = json.loads((ROOT / "app" / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))[
            f"error.csv_{err.code}"
        ]
        assert set(re.findall(r"\{(\w+)\}", template)) <= set(err.params), (lang, template, err.params)
    assert str(err) == (err.message if line is None else f"line {line}: {err.message}")
