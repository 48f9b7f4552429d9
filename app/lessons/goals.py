"""Exercise goals: a list of checks on named quantities of a session, and their evaluation.

A goal is data (from a lesson file): every check names a quantity (test_accuracy, dataset,
hidden_activations…) and one comparison (at_least 0.95, equals "xor", all_in ["linear"]…).
`evaluate(goal, state)` reads each quantity from a session's state, the same status body
GET /api/sessions/{id} answers (plus the model and data when a check needs them), and says
which checks hold: the page shows "test accuracy 0.81 / ≥ 0.95" from that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# How a check compares a quantity's value with its target.
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "at_least": lambda v, t: v >= t,
    "at_most": lambda v, t: v <= t,
    "below": lambda v, t: v < t,
    "above": lambda v, t: v > t,
    "equals": lambda v, t: v == t,
    "one_of": lambda v, t: v in t,
    "all_in": lambda v, t: all(x in t for x in v),
    "none_in": lambda v, t: not any(x in t for x in v),
}
NUMERIC = frozenset({"at_least", "at_most", "below", "above"})
LISTS = frozenset({"one_of", "all_in", "none_in"})


@dataclass(frozen=True)
class LessonState:
    """What a goal is evaluated on. `status`: the status body (status, epoch, loss, accuracy,
    config); `model` and `data`: GET …/model and …/data, given only when a check needs them;
    `seen`: what the server has observed of this session before (e.g. "diverged"); `answer`:
    a number the learner typed, for a check that asks them to read a value off the page."""

    status: dict
    model: dict | None = None
    data: dict | None = None
    seen: frozenset[str] = frozenset()
    answer: float | None = None


def _pair(key: str, part: str) -> Callable[[LessonState], float | None]:
    return lambda s: (s.status.get(key) or {}).get(part)


def _config(name: str) -> Callable[[LessonState], Any]:
    return lambda s: s.status["config"].get(name)


def _hidden(s: LessonState) -> list[dict]:
    return s.status["config"].get("hidden_layers", [])


def _hidden_spec(s: LessonState) -> str:
    """The hidden layers as a share link writes them: "128:relu,64:relu"."""
    return ",".join(f"{h['units']}:{h['activation']}" for h in _hidden(s))


def _answer_gap(s: LessonState) -> float | None:
    """How far the learner's answer is from the test accuracy (a percentage is read as one)."""
    acc = (s.status.get("accuracy") or {}).get("test")
    if s.answer is None or acc is None:
        return None
    answer = s.answer / 100 if s.answer > 1 else s.answer
    return round(abs(answer - acc), 6)


def neuron_accuracy(s: LessonState, layer: int = 1, neuron: int = 1) -> float | None:
    """How well one neuron of the first hidden layer separates two classes on its own: the
    share of all points on the right side of its line z = w₁x₁ + w₂x₂ + b = 0 (either side
    may be a class's, so a neuron and its mirror image score the same). Only for the first
    hidden layer on the raw inputs x1, x2, where the line is the neuron's whole story."""
    if s.model is None or s.data is None or layer != 1 or s.model.get("inputs") != ["x1", "x2"]:
        return None
    first = s.model["layers"][0]
    j = neuron - 1
    if not 0 <= j < len(first["biases"]) or len(s.model["layers"]) < 2:
        return None
    x = np.array(s.data["train"]["x"] + s.data["test"]["x"], dtype=float).reshape(-1, 2)
    y = np.array(s.data["train"]["y"] + s.data["test"]["y"])
    if len(y) == 0 or set(np.unique(y).tolist()) - {0, 1}:
        return None  # two classes only: one line, two sides
    w = np.array([first["weights"][0][j], first["weights"][1][j]], dtype=float)  # None (diverged) → nan
    b = first["biases"][j]
    if b is None or not np.isfinite(w).all() or not np.isfinite(b):
        return None  # a diverged network has no line to judge
    positive = x @ w + float(b) > 0
    right = float(np.mean(positive == (y == 0)))
    return round(max(right, 1.0 - right), 4)


@dataclass(frozen=True)
class Quantity:
    read: Callable[..., Any]
    needs: frozenset[str] = frozenset()  # "model", "data": fetched only for checks that use them
    params: frozenset[str] = frozenset()  # extra names a check may give (layer, neuron)


QUANTITIES: dict[str, Quantity] = {
    "test_accuracy": Quantity(_pair("accuracy", "test")),
    "train_accuracy": Quantity(_pair("accuracy", "train")),
    "test_loss": Quantity(_pair("loss", "test")),
    "train_loss": Quantity(_pair("loss", "train")),
    "epoch": Quantity(lambda s: s.status.get("epoch")),
    "status": Quantity(lambda s: s.status.get("status")),
    "dataset": Quantity(_config("dataset")),
    "classes": Quantity(_config("classes")),
    "noise": Quantity(_config("noise")),
    "learning_rate": Quantity(_config("learning_rate")),
    "optimizer": Quantity(_config("optimizer")),
    "hidden": Quantity(_hidden_spec),
    "hidden_layers": Quantity(lambda s: len(_hidden(s))),
    "max_units": Quantity(lambda s: max((h["units"] for h in _hidden(s)), default=0)),
    "hidden_units": Quantity(lambda s: sum(h["units"] for h in _hidden(s))),
    "hidden_activations": Quantity(lambda s: [h["activation"] for h in _hidden(s)]),
    "features": Quantity(_config("features")),
    "diverged_before": Quantity(lambda s: "diverged" in s.seen),
    "answer_gap": Quantity(_answer_gap),
    "neuron_accuracy": Quantity(neuron_accuracy, frozenset({"model", "data"}), frozenset({"layer", "neuron"})),
}


@dataclass(frozen=True)
class Check:
    """One condition: `quantity` (with `params`) compared by `op` with `target`."""

    quantity: str
    op: str
    target: Any
    params: dict = field(default_factory=dict)

    def value(self, state: LessonState) -> Any:
        return QUANTITIES[self.quantity].read(state, **self.params)

    def holds(self, value: Any) -> bool:
        if value is None:
            return False
        try:
            return bool(COMPARISONS[self.op](value, self.target))
        except TypeError:  # a value of another kind (None inside a list…): not met
            return False


@dataclass(frozen=True)
class Goal:
    checks: tuple[Check, ...]
    answer: bool = False  # the learner types a number the goal checks (answer_gap)

    @property
    def needs(self) -> frozenset[str]:
        return frozenset().union(*(QUANTITIES[c.quantity].needs for c in self.checks))


@dataclass(frozen=True)
class CheckResult:
    check: Check
    value: Any
    met: bool

    def as_dict(self) -> dict:
        c = self.check
        return {
            "quantity": c.quantity,
            "op": c.op,
            "target": c.target,
            "params": c.params,
            "value": self.value,
            "met": self.met,
        }


@dataclass(frozen=True)
class Progress:
    met: bool
    checks: tuple[CheckResult, ...]

    def as_dict(self) -> dict:
        return {"met": self.met, "checks": [r.as_dict() for r in self.checks]}


def evaluate(goal: Goal, state: LessonState) -> Progress:
    """Every check of the goal on this state; the goal is met when all hold."""
    results = []
    for check in goal.checks:
        value = check.value(state)
        if isinstance(value, float):
            value = round(value, 4)  # what the page shows; the comparison uses the same number
        results.append(CheckResult(check, value, check.holds(value)))
    return Progress(all(r.met for r in results), tuple(results))
