"""Lessons through the API: every exercise has a scripted solution that meets its goal and a
wrong attempt that does not, each driven as a learner would (PATCH, play, /params…) on a
session set up from the step's own setup; plus the lessons API's answers and errors."""

from __future__ import annotations

import json

import pytest

from app.lessons import lessons
from tests.support.waiting import wait_until

TRAIN_TIMEOUT = 60.0  # seconds of training a solution may take on a busy 2-core machine


class Learner:
    """A session set up as a step says (the step's fields, as the page sends them), and the
    learner's moves on it."""

    def __init__(self, client, lesson: str, step: str):
        self.client, self.lesson, self.step = client, lesson, step
        fields = client.get(f"/api/lessons/{lesson}").json()
        fields = next(s for s in fields["steps"] if s["id"] == step)["fields"]
        r = client.post("/ui/sessions", data=fields)
        assert r.status_code == 201, r.text
        self.sid = r.json()["id"]
        self.auth = {"Authorization": f"Bearer {r.json()['control_token']}"}
        self.url = f"/api/sessions/{self.sid}"

    def progress(self, answer: float | None = None) -> dict:
        params = {"lesson": self.lesson, "step": self.step, **({"answer": answer} if answer is not None else {})}
        r = self.client.get(f"{self.url}/lesson", params=params)
        assert r.status_code == 200, r.text
        return r.json()["progress"]

    def failing(self, answer: float | None = None) -> list[str]:
        return [c["quantity"] for c in self.progress(answer)["checks"] if not c["met"]]

    def patch(self, **fields) -> dict:
        r = self.client.patch(self.url, json=fields, headers=self.auth)
        assert r.status_code == 200, r.text
        return r.json()

    def post(self, action: str, **body) -> dict:
        r = self.client.post(f"{self.url}/{action}", headers=self.auth, **({"json": body} if body else {}))
        assert r.status_code == 200, r.text
        return r.json()

    def status(self) -> dict:
        return self.client.get(self.url).json()

    def play_until(self, predicate, timeout: float = TRAIN_TIMEOUT):
        """Play until predicate() is truthy and return its value; fail if it never is."""
        self.post("play")
        try:
            value = wait_until(predicate, timeout, interval=0.1)
        finally:
            self.post("pause")
        assert value, f"not reached in {timeout} s of training: {self.status()}"
        return value

    def train_until_met(self) -> dict:
        return self.play_until(lambda: (lambda p: p if p["met"] else None)(self.progress()))

    def train_epochs(self, n: int) -> None:
        self.play_until(lambda: self.status()["epoch"] >= n)

    def delete(self) -> None:
        self.client.delete(self.url, headers=self.auth)


@pytest.fixture
def learner(client):
    made = []

    def make(lesson: str, step: str) -> Learner:
        made.append(Learner(client, lesson, step))
        return made[-1]

    yield make
    for one in made:
        one.delete()


def hidden(*layers: tuple[int, str]) -> list[dict]:
    return [{"units": u, "activation": a} for u, a in layers]


# --- the seed course --------------------------------------------------------------------------
def solve_layers(me: Learner):
    me.post("step")  # untouched: the goal is about the structure, not training
    assert me.failing() == ["hidden_layers"]
    me.patch(hidden_layers=hidden((4, "tanh"), (2, "tanh"), (2, "tanh")))  # what "+" above the layers does
    assert me.progress()["met"]


def wrong_layers(me: Learner):
    me.patch(hidden_layers=hidden((4, "tanh")))  # one layer fewer, not one more
    assert me.failing() == ["hidden_layers"]


def set_neuron(me: Learner, w1: float, w2: float) -> None:
    me.post("params", layer=0, i=0, j=0, value=w1)
    me.post("params", layer=0, i=1, j=0, value=w2)


def solve_neuron(me: Learner):
    assert me.failing() == ["neuron_accuracy"]  # every weight starts at 0: no line yet
    set_neuron(me, 1.0, 1.0)  # the line x1 + x2 = 0 runs between (2, 2) and (-2, -2)
    progress = me.progress()
    assert progress["met"] and progress["checks"][0]["value"] >= 0.9


def wrong_neuron(me: Learner):
    set_neuron(me, 1.0, -1.0)  # a line through both blobs
    assert me.failing() == ["neuron_accuracy"]
    set_neuron(me, 1.0, 1.0)
    me.post("step")  # right weights, but trained: not by hand any more
    assert me.failing() == ["epoch"]


def solve_linear(me: Learner):
    me.train_epochs(100)
    assert me.progress()["met"], me.progress()


def wrong_linear(me: Learner):
    me.patch(hidden_layers=hidden((4, "tanh"), (4, "tanh")))
    me.train_epochs(100)
    assert set(me.failing()) == {"hidden_activations", "test_accuracy"}


def solve_nonlinear(me: Learner):
    me.patch(hidden_layers=hidden((4, "tanh"), (4, "relu")))
    assert me.train_until_met()["met"]


def wrong_nonlinear(me: Learner):
    me.train_epochs(150)  # still linear
    assert set(me.failing()) == {"hidden_activations", "test_accuracy"}
    # Squared inputs and no hidden layer separate the circle too, but without any activation.
    me.patch(hidden_layers=[], features=["x1sq", "x2sq"])
    assert me.play_until(lambda: me.status()["accuracy"]["test"] >= 0.9)  # accurate, and yet:
    assert set(me.failing()) == {"features", "hidden_layers"}


def solve_deeper(me: Learner):
    me.patch(hidden_layers=hidden(*[(8, "tanh")] * 6), optimizer="adam", learning_rate=0.003, epochs_per_frame=5)
    assert me.train_until_met()["met"]


def wrong_deeper(me: Learner):
    me.patch(epochs_per_frame=5)
    me.train_epochs(300)  # one layer of 4: not enough for the spiral
    assert me.failing() == ["test_accuracy"]


def solve_softmax(me: Learner):
    assert me.failing() == ["test_loss"]
    assert me.train_until_met()["met"]


def wrong_softmax(me: Learner):
    me.patch(classes=2)  # an easier problem is not the exercise
    me.train_epochs(100)
    assert me.failing() == ["classes"]


def solve_learning_rate(me: Learner):
    me.patch(learning_rate=3)
    me.play_until(lambda: me.status()["status"] == "diverged")
    assert me.failing() == ["status", "test_loss"]  # seen diverged now; not recovered yet
    me.patch(learning_rate=0.3)  # what the banner's button does: a lower rate, then a reset
    me.post("reset")
    assert me.train_until_met()["met"]


def wrong_learning_rate(me: Learner):
    me.patch(learning_rate=0.3)  # a good rate at once: never diverged
    me.train_epochs(100)
    assert me.status()["loss"]["test"] <= 0.2
    assert me.failing() == ["diverged_before"]


def solve_seed_figure(me: Learner):
    for _ in range(5):
        me.post("step")
    accuracy = me.status()["accuracy"]["test"]
    assert me.failing() == ["answer_gap"]  # no answer yet
    assert me.progress(answer=round(accuracy * 100, 1))["met"]  # "93.4" (a percentage) counts too
    assert me.progress(answer=round(accuracy, 3))["met"]


def wrong_seed_figure(me: Learner):
    for _ in range(6):
        me.post("step")
    accuracy = me.status()["accuracy"]["test"]
    assert me.failing(answer=accuracy) == ["epoch"]  # six epochs, not five
    assert set(me.failing(answer=accuracy - 0.05)) == {"epoch", "answer_gap"}


def solve_free(me: Learner):
    me.patch(hidden_layers=hidden((8, "tanh"), (8, "tanh")))  # 16 hidden neurons
    assert me.train_until_met()["met"]


def wrong_free(me: Learner):
    me.patch(hidden_layers=hidden((8, "tanh"), (8, "tanh")), noise=0.1)  # less noise is not allowed
    me.play_until(lambda: me.status()["accuracy"]["test"] >= 0.9)  # what the goal asks, but:
    assert me.failing() == ["noise"]
    me.patch(dataset="gauss", noise=0.3, hidden_layers=hidden((1, "tanh")))  # one line separates it
    assert me.play_until(lambda: me.status()["accuracy"]["test"] >= 0.9)  # accurate, and yet:
    assert me.failing() == ["dataset"]


# --- regression -------------------------------------------------------------------------------
def solve_plane(me: Learner):
    me.patch(hidden_layers=[])
    assert me.train_until_met()["met"]


def wrong_plane(me: Learner):
    me.train_epochs(100)
    assert "hidden_layers" in me.failing()


def solve_bumps(me: Learner):
    me.patch(hidden_layers=hidden((8, "tanh"), (8, "tanh")), optimizer="adam", learning_rate=0.01)
    assert me.train_until_met()["met"]


def wrong_bumps(me: Learner):
    me.train_epochs(100)  # no hidden layer: a plane through hills and dips
    assert set(me.failing()) == {"hidden_layers", "test_loss"}


EXERCISES = {
    ("seed", "layers"): (solve_layers, wrong_layers),
    ("seed", "neuron"): (solve_neuron, wrong_neuron),
    ("seed", "linear"): (solve_linear, wrong_linear),
    ("seed", "nonlinear"): (solve_nonlinear, wrong_nonlinear),
    ("seed", "deeper"): (solve_deeper, wrong_deeper),
    ("seed", "softmax"): (solve_softmax, wrong_softmax),
    ("seed", "learning-rate"): (solve_learning_rate, wrong_learning_rate),
    ("seed", "seed-figure"): (solve_seed_figure, wrong_seed_figure),
    ("seed", "free"): (solve_free, wrong_free),
    ("regression", "plane"): (solve_plane, wrong_plane),
    ("regression", "bumps"): (solve_bumps, wrong_bumps),
}


def test_every_exercise_has_a_solution_and_a_wrong_attempt():
    exercises = {(l.id, s.id) for l in lessons().values() for s in l.steps if s.goal is not None}
    assert exercises == set(EXERCISES)


@pytest.mark.parametrize("lesson, step", list(EXERCISES), ids=[f"{l}/{s}" for l, s in EXERCISES])
def test_the_solution_meets_the_goal(learner, lesson, step):
    me = learner(lesson, step)
    assert not me.progress()["met"]  # a step never starts solved
    EXERCISES[(lesson, step)][0](me)


@pytest.mark.parametrize("lesson, step", list(EXERCISES), ids=[f"{l}/{s}" for l, s in EXERCISES])
def test_a_wrong_attempt_does_not(learner, lesson, step):
    me = learner(lesson, step)
    EXERCISES[(lesson, step)][1](me)
    assert not me.progress()["met"]


# --- the API around them ----------------------------------------------------------------------
def test_lessons_list_and_one_lesson_in_both_languages(client):
    listed = client.get("/api/lessons", params={"lang": "ja"}).json()
    assert [l["id"] for l in listed["lessons"]] == ["seed", "regression"]
    assert listed["lessons"][0]["title"] == "ニューラルネットワークってなんだ?"
    seed = client.get("/api/lessons/seed", params={"lang": "en"}).json()
    assert 6 <= len(seed["steps"]) <= 10
    neuron = next(s for s in seed["steps"] if s["id"] == "neuron")
    assert neuron["fields"]["dataset"] == "gauss" and neuron["fields"]["init"] == "zeros"
    assert neuron["highlight"][0] == {
        "target": "neuron:1:1",
        "selector": '#network .net-box .node[data-l="1"][data-j="0"]',
    }
    assert neuron["goal"]["checks"][0]["label"].startswith("points on the right side")
    assert client.get("/openapi.json").json()["paths"].keys() >= {
        "/api/lessons",
        "/api/lessons/{lesson_id}",
        "/api/sessions/{sid}/lesson",
    }


def test_unknown_lesson_or_step_is_a_404_naming_the_field(client, make_session):
    r = client.get("/api/lessons/nope")
    assert r.status_code == 404 and r.json()["field"] == "lesson" and r.json()["code"] == "lesson_unknown"
    sid, _ = make_session()
    r = client.get(f"/api/sessions/{sid}/lesson", params={"lesson": "seed", "step": "nope"})
    assert r.status_code == 404 and r.json()["field"] == "step" and r.json()["code"] == "lesson_step_unknown"
    r = client.get(f"/api/sessions/{sid}/lesson", params={"lesson": "seed"})
    assert r.status_code == 422 and r.json()["field"] == "step"
    r = client.get(f"/api/sessions/{sid}/lesson", params={"step": "layers"})
    assert r.status_code == 422 and r.json()["field"] == "lesson"
    r = client.get(f"/api/sessions/{sid}/lesson", params={"lesson": "seed", "step": "layers", "answer": "x"})
    assert r.status_code == 422 and r.json()["field"] == "answer"
    assert client.get("/api/sessions/nope/lesson").status_code == 404


def test_the_step_a_teacher_shows_is_what_watchers_read(client, make_session):
    sid, auth = make_session(dataset="circle")
    assert client.get(f"/api/sessions/{sid}/lesson").json() == {"lesson": None, "step": None, "progress": None}
    assert client.put(f"/api/sessions/{sid}/lesson", json={"lesson": "seed", "step": "layers"}).status_code == 401
    r = client.put(f"/api/sessions/{sid}/lesson", json={"lesson": "seed", "step": "nope"}, headers=auth)
    assert r.status_code == 404 and r.json()["field"] == "step"
    r = client.put(f"/api/sessions/{sid}/lesson", json={"lesson": "seed", "step": "layers"}, headers=auth)
    assert r.json() == {"lesson": "seed", "step": "layers"}
    watched = client.get(f"/api/sessions/{sid}/lesson").json()
    assert watched["lesson"] == "seed" and watched["step"] == "layers"
    assert watched["progress"]["checks"][0]["quantity"] == "hidden_layers"
    client.put(f"/api/sessions/{sid}/lesson", json={"lesson": None}, headers=auth)
    assert client.get(f"/api/sessions/{sid}/lesson").json()["lesson"] is None


def test_the_stream_event_says_each_change_once(client, make_session, in_process_app):
    from app.routes.lessons import lesson_update

    sid, auth = make_session(dataset="circle")
    app, store = in_process_app.asgi.app, in_process_app.store
    record = store.sessions[sid]
    update = lambda sent: in_process_app.run(lesson_update(app, store, record, sent))  # noqa: E731
    version, payload = update(-1)  # no lesson shown: said once, so a watcher's page need not poll
    assert version == 0 and json.loads(payload) == {"lesson": None, "step": None, "progress": None}
    assert update(0) is None
    client.put(f"/api/sessions/{sid}/lesson", json={"lesson": "seed", "step": "layers"}, headers=auth)
    client.post(f"/api/sessions/{sid}/step", headers=auth)
    streamed = client.get(f"/api/sessions/{sid}/events?max_frames=1").text  # a watcher's stream says the step
    assert record.frame is not None  # the stream had the session build its frame
    lesson_events = [e for e in streamed.split("\n\n") if e.startswith("event: lesson\n")]
    assert len(lesson_events) == 1 and json.loads(lesson_events[0].split("data: ", 1)[1])["step"] == "layers"
    version, payload = update(-1)
    assert '"lesson": "seed"' in payload and '"step": "layers"' in payload
    assert update(version) is None  # nothing new since
    client.patch(f"/api/sessions/{sid}", json={"hidden_layers": hidden((2, "tanh"))}, headers=auth)
    client.get(f"/api/sessions/{sid}/events?max_frames=1")  # a frame of the new shape
    assert wait_until(lambda: update(version), 10) is not None


def test_learn_pages(client):
    r = client.get("/learn/seed/neuron", params={"lang": "ja"})
    assert r.status_code == 200
    assert 'data-lesson="seed"' in r.text and 'data-step="neuron"' in r.text and "init=zeros" in r.text
    assert 'id="btn-lessons"' in r.text and "/static/js/lessons.js" in r.text
    r = client.get("/learn/seed/nope", headers={"accept": "text/html"})
    assert r.status_code == 404 and "nope" in r.text


def test_a_diverged_network_fails_the_neuron_goal_instead_of_failing_the_request(learner):
    me = learner("seed", "neuron")
    # The step's separable blobs and zero weights never diverge: the learning-rate step's network does.
    me.patch(dataset="circle", init="he", learning_rate=10, hidden_layers=hidden(*[(8, "leaky_relu")] * 2))
    me.play_until(lambda: me.status()["status"] == "diverged")
    assert "neuron_accuracy" in me.failing()  # no line to judge: not met, and no 500


def test_an_earlier_steps_divergence_does_not_meet_the_learning_rate_goal(client, learner):
    me = learner("seed", "learning-rate")
    client.put(f"{me.url}/lesson", json={"lesson": "seed", "step": "neuron"}, headers=me.auth)  # the page's step
    me.patch(learning_rate=10)
    me.play_until(lambda: me.status()["status"] == "diverged")
    assert "diverged_before" not in me.failing()  # diverged now, seen while the page shows the neuron step
    client.put(f"{me.url}/lesson", json={"lesson": "seed", "step": "learning-rate"}, headers=me.auth)
    me.patch(learning_rate=0.3)  # recovered: a lower rate, then a reset
    me.post("reset")
    assert "diverged_before" in me.failing()  # the learning-rate step starts afresh
