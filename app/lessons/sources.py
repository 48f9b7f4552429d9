"""A goal's state from what the server process already has: a status reply (GET status),
or a frame (the stream's newest), with the session's config beside it. Both carry status,
epoch, loss and accuracy under the same names; the config travels separately."""

from __future__ import annotations

from app.lessons.goals import LessonState


def status_state(
    status: dict,
    config: dict,
    *,
    seen: frozenset[str] = frozenset(),
    model: dict | None = None,
    data: dict | None = None,
    answer: float | None = None,
) -> LessonState:
    """From a status reply (Session.status_dict) and the session's config."""
    return LessonState({**status, "config": config}, model, data, seen, answer)


def frame_model(frame: dict) -> dict | None:
    """The weights a frame carries, shaped like GET …/model: frames send every small layer's
    weights and biases as numbers (a big one travels quantised, and then this is None)."""
    layers = frame.get("layers") or []
    if not layers or any("weights" not in layer for layer in layers[1:]):
        return None
    return {
        "inputs": layers[0].get("names"),
        "layers": [{"weights": layer["weights"], "biases": layer["biases"]} for layer in layers[1:]],
    }


def frame_state(
    frame: dict, config: dict, *, seen: frozenset[str] = frozenset(), data: dict | None = None
) -> LessonState:
    """From a frame: its counters, losses and (small) weights, and the session's config."""
    status = {k: frame.get(k) for k in ("status", "epoch", "loss", "accuracy")}
    return LessonState({**status, "config": config}, frame_model(frame), data, seen)
