"""A training session: config + data + model + optimizer + seeded random state.

No HTTP, no rendering, no printing: the worker process calls these methods and ships
the results. Random streams are derived from the seed so that the same seed and config
give the same data ([data_seed, 0]), the same initial weights ([seed, 1]) and the same
minibatch order ([seed, 2]), and `reset` returns exactly to the start.

Arrays: x_train/x_test are raw points (n, dims); f_train/f_test the feature-expanded
inputs (n, d0) the network sees; y is (n,) class indices or regression targets.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np

from app.data import Dataset, make_dataset, split_train_test
from app.data.features import expand
from app.errors import FieldError
from app.nn import LOSSES, MLP, OPTIMIZERS, EpochPass, compiled, output, penalty, scheduled_lr
from app.numbers import finite_or_none, json_safe
from app.schema import DATA_FIELDS, SessionConfig
from app.state import TrainingState
from app.timeline import Timeline

DIVERGED_MESSAGE = (
    "The numbers in the network grew too large to compute (the loss became NaN or infinite). "
    "This usually means the learning rate is too high. Lower the learning rate and press Reset."
)


@dataclass
class Split:
    """Raw points, their feature expansion and targets, for the train and test sets."""

    train: Dataset
    test: Dataset
    f_train: np.ndarray
    f_test: np.ndarray


def sizes_for(cfg: SessionConfig, dims: int) -> list[int]:
    inputs = len(cfg.features) if dims == 2 else dims
    outputs = cfg.classes if cfg.problem == "classification" else 1
    return [inputs, *(h.units for h in cfg.hidden_layers), outputs]


class Status(StrEnum):
    """What a session is doing; it changes only through Session's methods."""

    PAUSED = "paused"
    RUNNING = "running"
    DIVERGED = "diverged"


class Session:
    """One learner's network. Methods mutate in place."""

    def __init__(
        self,
        cfg: SessionConfig,
        *,
        history_len: int = 2000,
        timeline_bytes: int = 4_000_000,
        custom: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ):
        self.cfg = cfg
        self.history_len = history_len
        self.timeline = Timeline(timeline_bytes)
        # Uploaded or hand-edited data: (x, y, is_train). None means "generate from config".
        self.custom = custom
        self.shape_version = 0  # bumped on every change of shape or data, so views know to redraw
        self.config_version = 0  # bumped on every config change, so pages show the session's settings
        self.probe = np.zeros(0)  # the input every neuron shows its value for (set from the data below)
        self.probe_y: int | float | None = None  # its true label, when the probe is a data point
        self._build_data()
        self.reset()

    # --- construction ---------------------------------------------------------------
    def _build_data(self) -> None:
        cfg = self.cfg
        if self.custom is not None:
            x, y, is_train = self.custom
            problem, classes = cfg.problem, cfg.classes
            train = Dataset(x[is_train], y[is_train], problem, classes, x.shape[1])
            test = Dataset(x[~is_train], y[~is_train], problem, classes, x.shape[1])
        else:
            ds = make_dataset(
                cfg.dataset,
                n_points=cfg.n_points,
                noise=cfg.noise,
                classes=cfg.classes or None,
                seed=cfg.effective_data_seed,
            )
            train, test = split_train_test(ds, cfg.train_fraction, seed=cfg.effective_data_seed)
        self.dims = train.dims
        self.data = Split(train, test, self._features(train.X), self._features(test.X))
        if self.probe.shape[0] != self.dims:
            # Digits: the first test sample, the one the page's probe names "sample 1 of N".
            first = self.data.test if self.dims != 2 and len(self.data.test.y) else self.data.train
            self.set_probe(first.X[0])
        else:
            self.set_probe(self.probe)  # re-snap: the data under the probe changed

    def _features(self, x: np.ndarray) -> np.ndarray:
        return expand(x, self.cfg.features) if self.dims == 2 else x

    def _new_model(self) -> MLP:
        cfg = self.cfg
        return MLP(
            sizes_for(cfg, self.dims),
            [h.activation for h in cfg.hidden_layers],
            cfg.problem,
            cfg.init,
            np.random.default_rng([cfg.seed, 1]),
        )

    def reset(self) -> None:
        """New initial weights from the seed, same data, epoch 0, paused."""
        self.model = self._new_model()
        self.optimizer = OPTIMIZERS[self.cfg.optimizer](self.model.params)
        self.shuffle_rng = np.random.default_rng([self.cfg.seed, 2])
        self._pass: EpochPass | None = None  # an epoch in progress (see train)
        self._fast: compiled.Runner | None = None  # the compiled path, with its epoch in progress
        self.epoch = 0
        self.step = 0
        self.status = Status.PAUSED
        self.message: str | None = None
        self.history: list[tuple[int, float, float]] = []
        self.evaluate()
        self.timeline.clear()
        self.timeline.record(self, force=True)

    def resume_from(self, epoch: int) -> None:
        """Go back to a checkpoint of the timeline and continue from there (paused)."""
        c = self.timeline.at(epoch)
        if c is None:
            raise FieldError("epoch", "there is no checkpoint at that epoch", code="no_checkpoint")
        c.state.restore(self)
        self.history = [h for h in self.history if h[0] <= c.epoch]
        self._pass = None
        self.timeline.truncate_after(epoch)
        self.status, self.message = Status.PAUSED, None
        self.evaluate()

    # --- status -----------------------------------------------------------------------
    def require_trainable(self) -> None:
        if self.status == Status.DIVERGED:
            raise FieldError(
                "status",
                "the network has diverged; lower the learning rate and reset first",
                code="diverged_reset_first",
            )

    def play(self) -> None:
        """Train continuously (the worker gives it ticks) until paused or diverged."""
        self.require_trainable()
        self.status = Status.RUNNING

    def pause(self) -> None:
        if self.status == Status.RUNNING:
            self.status = Status.PAUSED

    def halt(self, message: str) -> None:
        """Stop training after an internal error, saying why; nothing is lost."""
        self.status, self.message = Status.PAUSED, message

    @contextmanager
    def showing(self, state: TrainingState):
        """Within the block the session shows `state` (a checkpoint's weights and counters),
        then goes back to its live state; used to build a preview frame."""
        names = (
            "model",
            "optimizer",
            "shuffle_rng",
            "epoch",
            "step",
            "loss_train",
            "loss_test",
            "acc_train",
            "acc_test",
            "_test_z_out",
        )
        saved = {name: getattr(self, name) for name in names}
        try:
            state.restore(self)
            self.evaluate_only()
            yield self
        finally:
            for name, value in saved.items():
                setattr(self, name, value)

    # --- training -------------------------------------------------------------------
    @property
    def lr(self) -> float:
        return scheduled_lr(self.cfg.learning_rate, self.cfg.lr_schedule, self.epoch, self.cfg.lr_period)

    def train(self, epochs: int, budget_s: float | None = None) -> int:
        """Train until `epochs` more epochs have completed, or until `budget_s` seconds have
        run out (then possibly in the middle of an epoch, which the next call continues);
        returns how many epochs completed. The losses are evaluated when one did.

        Stops early, with status "diverged", as soon as the loss or a weight stops being finite.
        """
        if self.status == Status.DIVERGED:
            return 0
        cfg, d = self.cfg, self.data
        deadline = None if budget_s is None else time.perf_counter() + budget_s
        fast = None if self._pass is not None else self._compiled()  # an epoch begun on NumPy ends there
        done = 0 if fast is None else self._train_compiled(fast, epochs, deadline)
        # Past the crossover: BLAS's products with compiled elementwise steps, once the kernel is loaded.
        step = None if fast is not None else compiled.fused_step(self.optimizer)
        fill = None if fast is not None else compiled.fused_fill(self.model)
        while fast is None and done < epochs:
            epoch_pass = self._pass or EpochPass(self.model, d.f_train, d.train.y, cfg.batch_size, self.shuffle_rng)
            self._pass = epoch_pass
            with np.errstate(all="ignore"):  # overflow is caught below as divergence, not raised
                self.step += epoch_pass.run(
                    self.model,
                    self.optimizer,
                    self.lr,
                    cfg.regularization,
                    cfg.regularization_rate,
                    deadline,
                    step,
                    fill,
                )
            if not epoch_pass.done:
                break  # out of time in the middle of an epoch
            self._pass = None
            done += 1
            if self._epochs_ended(1, deadline):
                break
        if done or self.status == Status.DIVERGED:
            self.evaluate()
        return done

    def _compiled(self) -> compiled.Runner | None:
        """The compiled path for this network, or None (NumPy): app/nn/compiled. A runner is
        kept while the model, optimizer, data and config it was made for are the session's."""
        d = self.data
        self._fast = compiled.runner(self._fast, self.model, self.optimizer, d.f_train, d.train.y, self.cfg)
        return self._fast

    def _train_compiled(self, fast: compiled.Runner, epochs: int, deadline: float | None) -> int:
        """train()'s loop on the compiled path: whole epochs per call, each call ending at the
        timeline's next checkpoint epoch (its generator state is the one that epoch left)."""
        done = 0
        while done < epochs:
            every = self.timeline.every
            up_to = min(epochs - done, every - self.epoch % every)
            with np.errstate(all="ignore"):
                ran, updates = fast.run(self.shuffle_rng, self.epoch, up_to, deadline)
            self.step += updates
            if not ran:
                break  # out of time in the middle of an epoch
            done += ran
            if self._epochs_ended(ran, deadline):
                break
        return done

    def _epochs_ended(self, n: int, deadline: float | None) -> bool:
        """Count n finished epochs, check for divergence, checkpoint; True when training must
        stop now (diverged, or out of time)."""
        self.epoch += n
        if not self.model.is_finite():
            self._diverge()
            return True
        self.timeline.record(self)
        return deadline is not None and time.perf_counter() > deadline

    def _diverge(self) -> None:
        self.status = Status.DIVERGED
        self.message = DIVERGED_MESSAGE

    def evaluate(self) -> None:
        """Loss and accuracy on the whole train and test sets; appends to the loss history."""
        self.evaluate_only()
        if self.status != Status.DIVERGED and not (np.isfinite(self.loss_train) and self.model.is_finite()):
            self._diverge()
        self._record()

    def evaluate_only(self) -> None:
        """Loss and accuracy of the current model, without touching status or history."""
        d = self.data
        self.loss_train, self.acc_train = self._loss_acc(d.f_train, d.train.y)
        self.loss_test, self.acc_test = self._loss_acc(d.f_test, d.test.y)
        # The test set's outputs, kept for metrics(): every frame needs them, and evaluate
        # runs after every change to the model or the data.
        self._test_z_out = self._last_z_out if len(d.test.y) else None

    def _loss_acc(self, f: np.ndarray, y: np.ndarray) -> tuple[float, float | None]:
        if len(y) == 0:
            self._last_z_out = None
            return float("nan"), None
        with np.errstate(all="ignore"):  # a diverged model is reported, not raised
            z_out = self.model.forward(f)[0][-1]
            self._last_z_out = z_out
            loss, _ = LOSSES[self.cfg.problem](z_out, y)
        if self.cfg.problem != "classification" or not np.isfinite(loss):
            return loss, None  # no accuracy for a regression, nor for a diverged network
        return loss, float(np.mean(z_out.argmax(axis=1) == y))

    def _record(self) -> None:
        if self.history and self.history[-1][0] == self.epoch:
            self.history[-1] = (self.epoch, self.loss_train, self.loss_test)
        else:
            self.history.append((self.epoch, self.loss_train, self.loss_test))
        if len(self.history) > self.history_len:
            # Thin the older half to every other point: the curve keeps its shape, memory stays bounded.
            half = len(self.history) // 2
            self.history = self.history[:half:2] + self.history[half:]

    def regularization_loss(self) -> float:
        return penalty(self.model, self.cfg.regularization, self.cfg.regularization_rate)

    def set_probe(self, x: np.ndarray, snap: bool = True, label: int | None = None) -> None:
        """Make the data point nearest to x the probe, so its true label (and loss) is known;
        with snap=False, x itself (e.g. a digit drawn on the pad), with an optional label."""
        if not snap:
            self.probe, self.probe_y = np.asarray(x, dtype=float).copy(), label
            return
        points = [self.data.train, self.data.test] if hasattr(self, "data") else []
        best = None
        for ds in points:
            if len(ds.y):
                d2 = np.sum((ds.X - x) ** 2, axis=1)
                i = int(np.argmin(d2))
                if best is None or d2[i] < best[0]:
                    best = (d2[i], ds.X[i], ds.y[i])
        if best is None:
            self.probe, self.probe_y = np.asarray(x, dtype=float).copy(), None
        else:
            self.probe = best[1].astype(float).copy()
            self.probe_y = int(best[2]) if self.cfg.problem == "classification" else float(best[2])

    # --- reading ----------------------------------------------------------------------
    def input_names(self) -> list[str]:
        return list(self.cfg.features) if self.dims == 2 else [f"p{i}" for i in range(self.dims)]

    def predict(self, x_raw: np.ndarray) -> np.ndarray:
        return output(self.cfg.problem, self.model.forward(self._features(x_raw))[0][-1])

    def metrics(self) -> dict:
        """Test-set metrics: a confusion matrix (rows = true class) or RMSE and R²."""
        d = self.data
        if len(d.test.y) == 0 or self._test_z_out is None:
            return {}
        with np.errstate(all="ignore"):
            out = output(self.cfg.problem, self._test_z_out)
            if self.cfg.problem == "classification":
                k = self.cfg.classes
                pred = np.nan_to_num(out).argmax(axis=1)
                confusion = np.bincount(d.test.y * k + pred, minlength=k * k).reshape(k, k)
                return {"confusion": confusion.tolist()}
            err = out[:, 0] - d.test.y
            sse = float(np.sum(err * err))
        ss_tot = float(np.sum((d.test.y - d.test.y.mean()) ** 2))
        return {
            "rmse": finite_or_none(np.sqrt(sse / len(err))),
            "r2": finite_or_none(1.0 - sse / ss_tot) if ss_tot > 0 else None,
        }

    def status_dict(self) -> dict:
        status = {
            "status": self.status,
            "epoch": self.epoch,
            "step": self.step,
            "loss": {"train": finite_or_none(self.loss_train), "test": finite_or_none(self.loss_test)},
            "message": self.message,
            "shape_version": self.shape_version,
            "config_version": self.config_version,
            "dims": self.dims,
            "probe": {"x": json_safe(self.probe.tolist()), "y": self.probe_y},
        }
        if self.cfg.problem == "classification":
            status["accuracy"] = {"train": finite_or_none(self.acc_train), "test": finite_or_none(self.acc_test)}
        return status

    def model_dict(self) -> dict:
        m = self.model
        acts = m.hidden + ["softmax" if self.cfg.problem == "classification" else "linear"]
        return {
            "inputs": self.input_names(),
            "layers": [
                {"weights": json_safe(W.tolist()), "biases": json_safe(b.tolist()), "activation": a}
                for W, b, a in zip(m.W, m.b, acts)
            ],
        }

    def data_dict(self) -> dict:
        def part(ds: Dataset) -> dict:
            y = ds.y.tolist()
            return {"x": ds.X.tolist(), "y": y}

        # The problem travels with the points, so a page colours them by their own kind of y
        # even while a frame of the previous problem is still on its way.
        return {"problem": self.cfg.problem, "train": part(self.data.train), "test": part(self.data.test)}

    # --- changes while it learns ---------------------------------------------------------
    def apply_config(self, new: SessionConfig, *, data_changed: bool = False, new_data: bool = False) -> dict:
        """Switch to `new`, rebuilding only what the change requires and keeping learned
        weights wherever the shape allows. Returns what changed and what was rebuilt.
        `data_changed` forces a data rebuild (the points were edited or uploaded); with it,
        `new_data` says they are another dataset (an upload), not points edited by hand.
        All or nothing: if the change fails, the session is left exactly as it was."""
        # Whatever can fail (building data, reshaping) replaces attributes rather than changing
        # them, so restoring the attribute table undoes a failed change.
        saved = dict(self.__dict__)
        try:
            return self._apply_config(new, data_changed, new_data)
        except Exception:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def _apply_config(self, new: SessionConfig, data_changed: bool, new_data: bool = False) -> dict:
        old, old_dims = self.cfg, self.dims
        changed = sorted(k for k in SessionConfig.model_fields if getattr(new, k) != getattr(old, k))
        rebuilt: list[str] = []
        applies_on_reset: list[str] = []
        result = {"changed": changed, "rebuilt": rebuilt, "reset": False, "applies_on_reset": applies_on_reset}
        if not changed and not data_changed:
            return result
        self._pass = None  # an epoch in progress was shuffled for the old data and settings
        self.cfg = new
        self.config_version += 1
        if "dataset" in changed and new.dataset != "custom":
            self.custom = None
        if self.custom is not None and "train_fraction" in changed:
            x, y, _ = self.custom
            self.custom = (x, y, self._train_mask(len(y)))
        if data_changed or DATA_FIELDS.intersection(changed) or ("seed" in changed and new.data_seed is None):
            self._build_data()
            rebuilt.append("data")
        elif "features" in changed:
            d = self.data
            self.data = replace(d, f_train=self._features(d.train.X), f_test=self._features(d.test.X))

        # A new seed, problem or kind of input leaves nothing worth keeping: start afresh. So
        # does another dataset (a tile, a class count, an uploaded file), like TensorFlow
        # Playground; noise, the split, Regenerate and points edited by hand keep learning.
        another = new_data if data_changed else bool({"dataset", "classes"}.intersection(changed))
        if "seed" in changed or new.problem != old.problem or self.dims != old_dims or another:
            self.reset()
            result["reset"] = True
            rebuilt.append("network")
        elif sizes_for(new, self.dims) != self.model.sizes:
            self._reshape(old)
            rebuilt.append("network")
        else:
            for l, layer in enumerate(new.hidden_layers):
                if layer.activation != self.model.hidden[l]:
                    self.model.set_activation(l, layer.activation)
            if "optimizer" in changed:
                self.optimizer = OPTIMIZERS[new.optimizer](self.model.params)
        if "init" in changed and not result["reset"]:
            applies_on_reset.append("init")
        activations_changed = [h.activation for h in old.hidden_layers] != [h.activation for h in new.hidden_layers]
        if result["rebuilt"] or activations_changed:
            self.shape_version += 1
        self.evaluate()
        if result["rebuilt"] or activations_changed or "optimizer" in changed:
            # Checkpoints of another shape, data or optimizer cannot be resumed here: the
            # timeline starts again from now.
            self.timeline.clear()
            self.timeline.record(self, force=True)
        return result

    # --- editing the data by hand --------------------------------------------------------
    def _train_mask(self, n: int) -> np.ndarray:
        """Which of n custom points are for training: a seeded split by train_fraction."""
        rng = np.random.default_rng([self.cfg.effective_data_seed, 4])
        n_train = min(n - 1, max(1, round(n * self.cfg.train_fraction)))
        mask = np.zeros(n, dtype=bool)
        mask[rng.permutation(n)[:n_train]] = True
        return mask

    def _points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.custom is not None:
            return self.custom
        d = self.data
        is_train = np.r_[np.ones(len(d.train.y), bool), np.zeros(len(d.test.y), bool)]
        return np.vstack([d.train.X, d.test.X]), np.concatenate([d.train.y, d.test.y]), is_train

    def _use_points(
        self, x: np.ndarray, y: np.ndarray, is_train: np.ndarray, new_data: bool = False, **cfg_update
    ) -> dict:
        self.custom = (x, y, is_train)
        new = self.cfg.model_copy(update={"dataset": "custom", "n_points": len(y), **cfg_update})
        return self.apply_config(new, data_changed=True, new_data=new_data)

    def add_point(self, x: np.ndarray, label: float) -> dict:
        """Add one training point (a class index, or a target for regression)."""
        if self.dims != 2:
            raise FieldError("x", "points can be added to 2-D data only", code="points_2d_only")
        if self.cfg.problem == "classification":
            if not float(label).is_integer() or not 0 <= label < self.cfg.classes:
                raise FieldError(
                    "label",
                    f"label must be a class 0 … {self.cfg.classes - 1}",
                    code="point_label",
                    max=self.cfg.classes - 1,
                )
            label = int(label)
        elif not -1.0 <= label <= 1.0:
            raise FieldError("label", "a regression target must be between −1 and 1", code="point_target")
        px, py, is_train = self._points()
        return self._use_points(
            np.vstack([px, np.asarray(x, float)[None, :]]),
            np.append(py, np.asarray(label, dtype=py.dtype)),
            np.append(is_train, True),
        )

    def remove_nearest(self, x: np.ndarray) -> dict:
        """Remove the data point nearest to x (at least 4 points and one test point stay)."""
        if self.dims != 2:
            raise FieldError("x", "points can be removed from 2-D data only", code="points_2d_only")
        px, py, is_train = self._points()
        if len(py) <= 4:
            raise FieldError("x", "keep at least 4 points", code="keep_four_points")
        i = int(np.argmin(np.sum((px - np.asarray(x, float)) ** 2, axis=1)))
        keep = np.arange(len(py)) != i
        if not is_train[keep].any() or is_train[keep].all():
            raise FieldError("x", "keep at least one training point and one test point", code="keep_train_and_test")
        return self._use_points(px[keep], py[keep], is_train[keep])

    def load_points(self, x: np.ndarray, y: np.ndarray, problem: str, classes: int) -> dict:
        """Replace the data with uploaded points, split by train_fraction."""
        self.custom = None
        mask = self._train_mask(len(y))
        return self._use_points(x, y, mask, new_data=True, problem=problem, classes=classes)

    def _reshape(self, old: SessionConfig) -> None:
        """Resize the network to the config, keeping every weight that still has a place.
        Input rows follow their feature by name, so toggling a feature keeps the others' weights."""
        cfg, previous = self.cfg, self.model
        rng = np.random.default_rng([cfg.seed, 3, self.shape_version])  # new weights, reproducible
        self.model = previous.resized(
            sizes_for(cfg, self.dims), [h.activation for h in cfg.hidden_layers], cfg.init, rng
        )
        if self.dims == 2 and old.features != cfg.features:
            W0_old, W0 = previous.W[0], self.model.W[0]
            cols = min(W0_old.shape[1], W0.shape[1])
            for row, name in enumerate(cfg.features):
                if name in old.features:
                    W0[row, :cols] = W0_old[old.features.index(name), :cols]
        self.optimizer = OPTIMIZERS[cfg.optimizer](self.model.params)
