"""Lesson files: every bundled one loads; a broken one is refused naming its file and field;
goals evaluate on a session's state as the page reads them."""

from __future__ import annotations

import pytest

from app.lessons import LANGS, LessonError, LessonState, evaluate, highlight_selector, lessons, load_lesson
from app.lessons.board import Board
from app.lessons.goals import Check, Goal
from app.lessons.sources import frame_state

GOOD = """
id = "{name}"
order = 5
title = {{ en = "T", ja = "タ" }}
summary = {{ en = "S", ja = "サ" }}
[[steps]]
id = "one"
setup = "dataset=xor&hidden=4:tanh&seed=2"
highlight = ["layer:hidden", "neuron:1:2"]
title = {{ en = "A", ja = "ア" }}
text = {{ en = "B", ja = "ビ" }}
hint = {{ en = "H", ja = "ヒ" }}
done = {{ en = "D", ja = "ド" }}
goal = {{ checks = [{{ quantity = "test_accuracy", at_least = 0.9 }}] }}
"""


def write(tmp_path, text: str, name: str = "demo"):
    path = tmp_path / f"{name}.toml"
    path.write_text(text.replace("{name}", name) if "{name}" in text else text, encoding="utf-8")
    return path


def test_the_bundled_lessons_load_with_both_languages_everywhere():
    found = lessons()
    assert list(found) == ["seed", "regression"]
    assert 6 <= len(found["seed"].steps) <= 10
    for lesson in found.values():
        for step in lesson.steps:
            for lang in LANGS:
                assert step.title(lang) and step.text(lang)
            assert all(highlight_selector(h) for h in step.highlight)
            if step.goal:
                assert step.hint and step.done
            assert "seed" in step.fields  # every learner of a step gets the same data


def test_a_good_file_loads(tmp_path):
    lesson = load_lesson(write(tmp_path, GOOD.format(name="demo")))
    step = lesson.steps[0]
    assert step.fields["dataset"] == "xor" and step.fields["hidden"] == "4:tanh" and step.fields["seed"] == "2"
    assert step.goal.checks[0] == Check("test_accuracy", "at_least", 0.9)


@pytest.mark.parametrize(
    "change, field",
    [
        (('id = "demo"', 'id = "other"'), "id"),
        (('ja = "タ"', 'jp = "タ"'), "title"),
        (('ja = "ビ"', 'ja = "  "'), "steps.0.text.ja"),
        (("dataset=xor", "dataset=nope"), "steps.0.setup"),
        (("hidden=4:tanh", "hidden=4:wobbly"), "steps.0.setup"),
        (('"neuron:1:2"', '"neuron:0:2"'), "steps.0.highlight"),
        (('quantity = "test_accuracy"', 'quantity = "happiness"'), "steps.0.goal.checks.0.quantity"),
        (("at_least = 0.9", 'at_least = "high"'), "steps.0.goal.checks.0.at_least"),
        (("at_least = 0.9", "at_least = 0.9, at_most = 1"), "steps.0.goal.checks.0"),
        (('hint = { en = "H", ja = "ヒ" }', ""), "steps.0"),
        (('id = "one"', 'id = "One Step"'), "steps.0.id"),
        (('setup = "', 'wobble = 1\nsetup = "'), "steps.0.wobble"),
    ],
)
def test_a_broken_file_is_refused_naming_file_and_field(tmp_path, change, field):
    path = write(tmp_path, GOOD.format(name="demo").replace(*change))
    with pytest.raises(LessonError) as e:
        load_lesson(path)
    assert e.value.field == field and "demo.toml" in str(e.value)


def test_not_toml_at_all(tmp_path):
    with pytest.raises(LessonError, match="demo.toml: file: not valid TOML"):
        load_lesson(write(tmp_path, "id = [", "demo"))


STATUS = {
    "status": "paused",
    "epoch": 120,
    "loss": {"train": 0.31, "test": 0.35},
    "accuracy": {"train": 0.88, "test": 0.8149},
    "config": {"dataset": "circle", "hidden_layers": [{"units": 4, "activation": "linear"}], "noise": 0.0},
}


def test_evaluate_reports_every_check_with_its_value():
    goal = Goal(
        (
            Check("test_accuracy", "at_least", 0.95),
            Check("hidden_activations", "all_in", ["linear"]),
            Check("dataset", "one_of", ["circle", "xor"]),
            Check("diverged_before", "equals", True),
        )
    )
    progress = evaluate(goal, LessonState(STATUS))
    assert [(r.value, r.met) for r in progress.checks] == [
        (0.8149, False),
        (["linear"], True),
        ("circle", True),
        (False, False),
    ]
    assert not progress.met
    assert evaluate(goal, LessonState({**STATUS, "accuracy": {"test": 0.95}}, seen=frozenset({"diverged"}))).met


def test_a_missing_value_never_meets_a_check():
    diverged = {**STATUS, "loss": {"train": None, "test": None}, "accuracy": {"train": None, "test": None}}
    assert not evaluate(Goal((Check("test_loss", "at_most", 0.2),)), LessonState(diverged)).met


def test_a_neuron_on_its_own_from_a_frame():
    data = {"train": {"x": [[2, 2], [-2, -2]], "y": [0, 1]}, "test": {"x": [[1.5, 2.5], [-2, -1]], "y": [0, 1]}}
    frame = {
        "status": "paused",
        "epoch": 0,
        "layers": [
            {"names": ["x1", "x2"]},
            {"weights": [[1.0], [-1.0]], "biases": [0.0]},
            {"weights": [[0.0, 0.0]], "biases": [0.0, 0.0]},
        ],
    }
    goal = Goal((Check("neuron_accuracy", "at_least", 0.9, {"layer": 1, "neuron": 1}),))
    assert goal.needs == {"model", "data"}
    assert evaluate(goal, frame_state(frame, STATUS["config"], data=data)).checks[0].value == 0.5
    frame["layers"][1]["weights"] = [[-1.0], [-1.0]]  # the mirror image separates as well
    assert evaluate(goal, frame_state(frame, STATUS["config"], data=data)).met


def test_the_board_is_bounded_and_remembers_divergence():
    board = Board(capacity=2)
    board.observe("a", "diverged")
    assert board.observe("a", "paused") == {"diverged"}
    board.set_step("b", "seed", "layers")
    board.set_step("c", "seed", "layers")
    assert len(board) == 2 and board.get("a") is None
    version = board.get("c").version
    assert not board.set_step("c", "seed", "layers").version != version
    assert board.set_progress("c", {"met": False}) and not board.set_progress("c", {"met": False})
