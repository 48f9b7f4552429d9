"""Reads and checks every lesson file (app/lessons/*.toml) at start-up. A mistake in a file
stops the server with an error naming the file and the field, never a half-working lesson.

A lesson file (TOML, both languages side by side):

    id = "seed"            # the file's name without .toml
    order = 1              # the lessons list is sorted by it
    title = { en = "…", ja = "…" }
    summary = { en = "…", ja = "…" }

    [[steps]]
    id = "layers"          # the step's address: /learn/seed/layers
    setup = "preset=default&hidden=4:tanh,2:tanh"   # a share link's query; "" keeps the session
    highlight = ["layer:input", "neuron:1:1", "control:learning_rate"]
    title = { en = "…", ja = "…" }
    text = { en = "…", ja = "…" }
    hint = { en = "…", ja = "…" }    # needed with a goal
    done = { en = "…", ja = "…" }    # needed with a goal
    goal = { answer = false, checks = [{ quantity = "test_accuracy", at_least = 0.95 }] }
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, NoReturn

from app.errors import FieldError
from app.lessons.goals import COMPARISONS, LISTS, NUMERIC, QUANTITIES, Check, Goal
from app.lessons.model import LANGS, Lesson, Step, Text, highlight_selector
from app.presets import PRESETS
from app.querycodec import fields_from_strings, to_query
from app.schema import Limits, resolve

LESSON_DIR = Path(__file__).parent
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
LESSON_KEYS = {"id", "order", "title", "summary", "steps"}
STEP_KEYS = {"id", "title", "text", "setup", "highlight", "goal", "hint", "done"}
GOAL_KEYS = {"checks", "answer"}


class LessonError(ValueError):
    """A lesson file that cannot be used: which file, which field, what is wrong."""

    def __init__(self, path: Path, field: str, message: str):
        super().__init__(f"{path.name}: {field}: {message}")
        self.path, self.field, self.message = path, field, message


def _text(raw: Any, where: str, fail) -> Text:
    if not isinstance(raw, dict) or set(raw) != set(LANGS):
        fail(where, "needs exactly the languages en and ja")
    for lang in LANGS:
        if not isinstance(raw[lang], str) or not raw[lang].strip():
            fail(f"{where}.{lang}", "must be a non-empty text")
    return Text(raw["en"].strip(), raw["ja"].strip())


def _check(raw: Any, where: str, fail) -> Check:
    if not isinstance(raw, dict):
        fail(where, 'must be a table like { quantity = "test_accuracy", at_least = 0.95 }')
    quantity = raw.get("quantity")
    if quantity not in QUANTITIES:
        fail(f"{where}.quantity", f"unknown quantity {quantity!r}; known: {', '.join(QUANTITIES)}")
    ops = [k for k in raw if k in COMPARISONS]
    if len(ops) != 1:
        fail(where, f"needs exactly one comparison of {', '.join(COMPARISONS)}")
    op = ops[0]
    target = raw[op]
    params = {k: v for k, v in raw.items() if k not in ("quantity", op)}
    allowed = QUANTITIES[quantity].params
    for name, value in params.items():
        if name not in allowed or not isinstance(value, int) or value < 1:
            fail(f"{where}.{name}", f"not a parameter of {quantity} (allowed: {', '.join(sorted(allowed)) or 'none'})")
    if op in NUMERIC and (isinstance(target, bool) or not isinstance(target, int | float)):
        fail(f"{where}.{op}", "must be a number")
    if op in LISTS and not isinstance(target, list):
        fail(f"{where}.{op}", "must be a list")
    return Check(quantity, op, target, params)


def _goal(raw: Any, where: str, fail) -> Goal:
    if not isinstance(raw, dict) or set(raw) - GOAL_KEYS:
        fail(where, f"allowed keys: {', '.join(sorted(GOAL_KEYS))}")
    checks = raw.get("checks")
    if not isinstance(checks, list) or not checks:
        fail(f"{where}.checks", "needs at least one check")
    goal = Goal(tuple(_check(c, f"{where}.checks.{i}", fail) for i, c in enumerate(checks)), bool(raw.get("answer")))
    if goal.answer != any(c.quantity == "answer_gap" for c in goal.checks):
        fail(f"{where}.answer", "a goal asks for an answer exactly when it checks answer_gap")
    return goal


def setup_fields(setup: str) -> dict[str, str]:
    """A setup query as the complete config values a page applies to its session: the share
    link's values over the defaults (and a preset's), without the seed unless it is given,
    so every learner gets the same network and data only when the lesson says so."""
    pairs = dict(part.split("=", 1) for part in setup.split("&") if part)
    name = pairs.pop("preset", "default")
    if name not in PRESETS:
        raise FieldError("preset", f"unknown preset {name!r}")
    preset = PRESETS[name]
    given = {**preset, **pairs}
    cfg = resolve(None, fields_from_strings(given, ignore_unknown=False), Limits())
    query = to_query(cfg)
    return {k: v for k, v in query.items() if k not in ("seed", "data_seed") or k in given}


def _step(raw: Any, where: str, fail) -> Step:
    if not isinstance(raw, dict):
        fail(where, "must be a table")
    if set(raw) - STEP_KEYS:
        fail(f"{where}.{sorted(set(raw) - STEP_KEYS)[0]}", "unknown key")
    if not isinstance(raw.get("id"), str) or not SLUG.match(raw["id"]):
        fail(f"{where}.id", "must be a short lowercase name (a-z, 0-9, -)")
    setup = raw.get("setup", "")
    if not isinstance(setup, str):
        fail(f"{where}.setup", "must be a share link's query text")
    try:
        fields = setup_fields(setup) if setup else {}
    except (FieldError, ValueError) as e:
        fail(f"{where}.setup", f"not a valid setup: {getattr(e, 'field', '')} {e}".strip())
    highlight = raw.get("highlight", [])
    if not isinstance(highlight, list) or any(
        not isinstance(h, str) or highlight_selector(h) is None for h in highlight
    ):
        fail(f"{where}.highlight", "targets are layer:…, neuron:L:N, control:…, output:… names (app/lessons/model.py)")
    goal = _goal(raw["goal"], f"{where}.goal", fail) if "goal" in raw else None
    if goal is not None and not ("hint" in raw and "done" in raw):
        fail(where, "a step with a goal needs a hint and a done text")
    opt = {k: _text(raw[k], f"{where}.{k}", fail) for k in ("hint", "done") if k in raw}
    return Step(
        id=raw["id"],
        title=_text(raw.get("title"), f"{where}.title", fail),
        text=_text(raw.get("text"), f"{where}.text", fail),
        setup=setup,
        fields=fields,
        highlight=tuple(highlight),
        goal=goal,
        **opt,
    )


def load_lesson(path: Path) -> Lesson:
    """One lesson file, checked; LessonError names the file and the field."""

    def fail(field: str, message: str) -> NoReturn:
        raise LessonError(path, field, message)

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        fail("file", f"not valid TOML: {e}")
    if set(raw) - LESSON_KEYS:
        fail(sorted(set(raw) - LESSON_KEYS)[0], "unknown key")
    if raw.get("id") != path.stem:
        fail("id", f"must be the file's name, {path.stem!r}")
    if not isinstance(raw.get("order"), int):
        fail("order", "must be a whole number")
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps:
        fail("steps", "needs at least one [[steps]]")
    parsed = tuple(_step(s, f"steps.{i}", fail) for i, s in enumerate(steps))
    ids = [s.id for s in parsed]
    if len(set(ids)) != len(ids):
        fail("steps", "step ids must be unique")
    return Lesson(
        path.stem,
        raw["order"],
        _text(raw.get("title"), "title", fail),
        _text(raw.get("summary"), "summary", fail),
        parsed,
    )


def load_lessons(directory: Path = LESSON_DIR) -> dict[str, Lesson]:
    """Every lesson of the directory, in their order."""
    lessons = [load_lesson(p) for p in sorted(directory.glob("*.toml"))]
    return {lesson.id: lesson for lesson in sorted(lessons, key=lambda x: (x.order, x.id))}
