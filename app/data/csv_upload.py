"""Turn an uploaded CSV of 2-D points into a Dataset, or say exactly what is wrong.

Rows are ``x1,x2,label`` (classification) or ``x1,x2,target`` (regression),
with an optional header line. The result has X float64 (n, 2) and y (n,):
int64 class indices 0..k-1 (labels in sorted order) or float64 targets.

Rescaling, so any upload fits the playground:
- points: if any |coordinate| > 6, both coordinates are centred and shrunk by
  one common factor into [-6, 6]^2 (``fit_to_plane``), keeping the shape; if the
  two axes' ranges differ more than tenfold, each axis is scaled on its own;
- regression targets: if max |target| > 1, all are divided by it, so they lie
  in [-1, 1] with zero and signs kept.
"""

import csv

import numpy as np

from app.data.datasets import Dataset
from app.data.plane import PLANE

MIN_ROWS = 4
MIN_CLASSES, MAX_CLASSES = 2, 10
LABEL_NAMES = {"label": "classification", "class": "classification", "target": "regression", "y": None}
COLUMN_NAMES = ("x1", "x2", "label/target")
# Largest |coordinate| accepted in an upload (and in an imported snapshot's own data). Any
# real data set fits after a change of units; past ~9e307 the centre and span of the points
# overflow to infinity, and a session trained on such numbers is broken for good.
MAX_COORDINATE = 1e6


class CsvError(ValueError):
    """A problem with the uploaded file; ``line`` is 1-based, or None for the whole file.

    ``code`` and ``params`` let the page say the same thing in the reader's language
    (message catalog key "error.csv_<code>"); ``message`` is the English text.
    """

    def __init__(self, message: str, line: int | None = None, *, code: str, **params):
        self.message = message
        self.line = line
        self.code = code
        self.params = {"line": line, **params} if line is not None else params
        super().__init__(message if line is None else f"line {line}: {message}")


SPAN_RATIO = 10  # axes whose ranges differ more than this are scaled each on its own


def fit_to_plane(X: np.ndarray) -> np.ndarray:
    """(n, 2) → (n, 2): centre and shrink by one factor into [-6, 6]^2 if it sticks out;
    axes of very different ranges (SPAN_RATIO) are centred and scaled each to fill it."""
    X = np.asarray(X, dtype=np.float64)
    halves = X.max(axis=0) / 2 - X.min(axis=0) / 2 if len(X) else np.zeros(2)
    # Metres against millimetres: one factor would flatten the narrow axis onto a line.
    uneven = bool(halves.min() > 0 and halves.max() / SPAN_RATIO > halves.min())  # divided: never overflows
    if np.abs(X).max(initial=0.0) <= PLANE and not uneven:
        return X.copy()
    low, high = X.min(axis=0), X.max(axis=0)
    # Halves first: (low + high) and (high - low) overflow to ∞ for values near the float
    # limit; their halves never do, and neither does X - centre, whose size is ≤ half_span.
    centre = low / 2 + high / 2
    half_span = (high / 2 - low / 2) if uneven else (high / 2 - low / 2).max()
    # Otherwise one factor for both axes so circles stay circles; a zero span is a single point.
    scale = PLANE / np.where(half_span > 0, half_span, PLANE)
    return np.clip((X - centre) * scale, -PLANE, PLANE)


def _number(field: str) -> float | None:
    """The float in field, or None; rejects Python-only spellings like 1_000."""
    if "_" in field:
        return None
    try:
        return float(field)
    except ValueError:
        return None


def _show(field: str) -> str:
    return repr(field if len(field) <= 20 else field[:20] + "…")


def _decode(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise CsvError("file is not UTF-8 text (is it a spreadsheet or binary file?)", line, code="not_utf8") from None
    if "\x00" in text:
        raise CsvError(
            "file contains NUL bytes; it looks binary, not CSV",
            text[: text.index("\x00")].count("\n") + 1,
            code="binary",
        )
    return text


def _rows(text: str) -> list[tuple[int, list[str]]]:
    """(line number, stripped fields) for each non-blank line."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    filled = [(i, s) for i, s in enumerate(lines, start=1) if s.strip()]
    if not filled:
        return []
    first = filled[0][1]
    # Comma unless the first line clearly uses ';' or tab instead.
    delimiter = next((d for d in ",;\t" if d in first), ",")
    rows = []
    for i, s in filled:
        try:
            fields = next(csv.reader([s], delimiter=delimiter))
        except csv.Error as err:  # e.g. a stray quote character
            raise CsvError(f"cannot split the line into fields: {err}", i, code="split") from None
        rows.append((i, [f.strip() for f in fields]))
    return rows


def _header_problem(line: int, fields: list[str]) -> str | None:
    name = fields[2].lower() if len(fields) == 3 else ""
    if name not in LABEL_NAMES:
        raise CsvError(
            "first line looks like a header, but it is not "
            "'x1,x2,label' or 'x1,x2,target' (third column may be "
            "label, class, target or y)",
            line,
            code="header",
        )
    return LABEL_NAMES[name]


def _coordinates(rows) -> np.ndarray:
    X = np.empty((len(rows), 2))
    for r, (line, fields) in enumerate(rows):
        for c in range(2):
            value = _number(fields[c])
            if value is None:
                raise _column_error(line, c, fields[c], "is not a number: {value}", code="not_number")
            if not np.isfinite(value):
                raise _column_error(line, c, fields[c], "must be a finite number, not {value}", code="not_finite")
            if abs(value) > MAX_COORDINATE:
                limit = f"{MAX_COORDINATE:,.0f}"
                raise _column_error(line, c, fields[c], f"must lie within ±{limit}, not {{value}}", code="out_of_range",
                                    max=limit)  # fmt: skip
            X[r, c] = value
    return X


def _column_error(line: int, c: int, field: str, why: str, *, code: str, **params) -> CsvError:
    """A bad coordinate, named by its line and column; `why` may say {value}."""
    value = _show(field)
    return CsvError(f"column {c + 1} ({COLUMN_NAMES[c]}) {why.format(value=value)}", line, code=code,
                    column=c + 1, name=COLUMN_NAMES[c], value=value, **params)  # fmt: skip


def _looks_like_classes(labels: list[str]) -> bool:
    """Integer-valued numbers with few distinct values, or any non-numbers."""
    parsed = [_number(s) for s in labels]
    values = [v for v in parsed if v is not None]
    if len(values) < len(parsed):
        return True
    finite = all(np.isfinite(v) for v in values)
    return finite and all(v == int(v) for v in values) and len(set(values)) <= MAX_CLASSES


def _targets(rows) -> np.ndarray:
    y = np.empty(len(rows))
    for r, (line, fields) in enumerate(rows):
        value = _number(fields[2])
        if value is None or not np.isfinite(value):
            raise CsvError(
                f"column 3 (target) must be a finite number, not {_show(fields[2])}",
                line,
                code="not_finite",
                column=3,
                name="target",
                value=_show(fields[2]),
            )
        y[r] = value
    peak = np.abs(y).max()
    return y / peak if peak > 1 else y


def _class_indices(rows) -> tuple[np.ndarray, int]:
    """Labels → 0..k-1 in sorted order (numeric order if all are finite numbers)."""
    labels = [fields[2] for _, fields in rows]
    numbers = [_number(s) for s in labels]
    # Numeric labels are compared by value, so "1" and "1.0" are one class.
    numeric = all(v is not None and np.isfinite(v) for v in numbers)
    keys = numbers if numeric else labels
    seen: set = set()
    for (line, _), label, key in zip(rows, labels, keys):
        if not label:
            raise CsvError("column 3 (label) is empty", line, code="empty_label")
        if key not in seen and len(seen) == MAX_CLASSES:
            raise CsvError(
                f"too many classes: label {_show(label)} would be class {MAX_CLASSES + 1}, the limit is {MAX_CLASSES}",
                line,
                code="too_many_classes",
                max=MAX_CLASSES,
            )
        seen.add(key)
    if len(seen) < MIN_CLASSES:
        raise CsvError(f"only one class ({_show(labels[0])}); need at least {MIN_CLASSES} classes", code="one_class")
    index = {key: i for i, key in enumerate(sorted(seen))}
    return np.array([index[key] for key in keys], dtype=np.int64), len(index)


def parse_csv(raw: bytes, *, max_bytes: int, max_rows: int, problem: str | None = None) -> Dataset:
    """Parse and check an upload; ``problem`` overrides the header and the guess."""
    if problem not in (None, "classification", "regression"):
        raise ValueError(f"problem must be 'classification' or 'regression', not {problem!r}")
    if len(raw) > max_bytes:
        raise CsvError(f"file is larger than the limit of {max_bytes} bytes", code="too_large", max=max_bytes)
    rows = _rows(_decode(raw))
    if not rows:
        raise CsvError("file is empty", code="empty")
    header_problem = None
    first_line, first = rows[0]
    if len(first) >= 2 and (_number(first[0]) is None or _number(first[1]) is None):
        header_problem = _header_problem(first_line, first)
        rows = rows[1:]
    for count, (line, fields) in enumerate(rows, start=1):
        if count > max_rows:
            raise CsvError(
                f"too many rows: the limit is {max_rows} data rows", line, code="too_many_rows", max=max_rows
            )
        if len(fields) != 3:
            raise CsvError(
                f"expected 3 columns (x1, x2, label or target), found {len(fields)}",
                line,
                code="columns",
                found=len(fields),
            )
    coordinates = _coordinates(rows)  # first: a bad number names its line, even in a short file
    if len(rows) < MIN_ROWS:
        raise CsvError(
            f"too few rows: need at least {MIN_ROWS} data rows, found {len(rows)}",
            code="too_few_rows",
            min=MIN_ROWS,
            found=len(rows),
        )
    X = fit_to_plane(coordinates)
    problem = (
        problem
        or header_problem
        or ("classification" if _looks_like_classes([f[2] for _, f in rows]) else "regression")
    )
    if problem == "regression":
        return Dataset(X=X, y=_targets(rows), problem=problem, classes=0, dims=2)
    y, k = _class_indices(rows)
    return Dataset(X=X, y=y, problem=problem, classes=k, dims=2)
