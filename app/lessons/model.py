"""What a lesson is: a sequence of steps, each with its text in both languages, the setup
it starts from (a share link's query), what it highlights on the page, and maybe a goal."""

from __future__ import annotations

from dataclasses import dataclass

from app.lessons.goals import Goal

LANGS = ("en", "ja")

# What a step may highlight, and where that is on the page (a CSS selector). Neurons are
# "neuron:L:N": neuron N (from 1) of layer L (1 = the first hidden layer), as the texts say.
HIGHLIGHTS = {
    "layer:input": "#network .net-box .column.col-input",
    "layer:hidden": "#network .net-box .column.col-hidden",
    "layer:output": "#network .net-box .column.col-output",
    "layer:loss": "#network .net-box .column.col-loss",
    "control:layers": "#network .layers-ctl",
    "control:units": "#network .net-box .units-ctl",
    "control:activation": "#network .net-box .col-ctl select[name=activation]",
    "control:learning_rate": ".topbar .field-learning_rate",
    "control:optimizer": ".topbar .field-optimizer",
    "control:dataset": "#data-panel .datasets",
    "control:noise": "#data-panel .field-noise",
    "control:preset": "#network .presets",
    "control:play": "#btn-play",
    "control:step": "#btn-step",
    "control:reset": "#btn-reset",
    "control:recover": "#diverged",
    "control:forward": "#btn-forward",
    "output:metrics": "#metrics, .output-panel .metrics",
    "output:plot": ".output-panel .plot-area",
}


def highlight_selector(target: str) -> str | None:
    """The CSS selector of a highlight target, or None for a name no page has."""
    if target in HIGHLIGHTS:
        return HIGHLIGHTS[target]
    kind, _, rest = target.partition(":")
    layer, _, neuron = rest.partition(":")
    if kind == "neuron" and layer.isdigit() and neuron.isdigit() and int(layer) >= 1 and int(neuron) >= 1:
        return f'#network .net-box .node[data-l="{int(layer)}"][data-j="{int(neuron) - 1}"]'
    return None


@dataclass(frozen=True)
class Text:
    en: str
    ja: str

    def __call__(self, lang: str) -> str:
        return self.ja if lang == "ja" else self.en


@dataclass(frozen=True)
class Step:
    id: str
    title: Text
    text: Text
    setup: str  # a share link's query ("" keeps the session as it is)
    fields: dict[str, str]  # that setup as complete config values (what the page applies)
    highlight: tuple[str, ...]
    goal: Goal | None = None
    hint: Text | None = None
    done: Text | None = None  # said when the goal is met: why it worked


@dataclass(frozen=True)
class Lesson:
    id: str
    order: int
    title: Text
    summary: Text
    steps: tuple[Step, ...]

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)
