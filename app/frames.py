"""Frames: what the page needs to repaint one moment of a session, as JSON-ready data.

A frame is built once per training tick and shared by every viewer of the session.
Numbers are rounded to what a screen can show, and NaN/∞ become null so a frame is
always valid JSON. Heatmaps over the input plane travel as one compact binary blob:

  blob = thumbnails of every neuron (input, hidden…, output), each T×T uint8, row-major,
         then the output plot: classification → argmax class (G×G) + confidence (G×G);
                               regression     → value (G×G)
  bytes: signed values v with scale s → round((v/s + 1)·127.5); class index as is;
         confidence (p_max − 1/K)/(1 − 1/K) → 0…255.
  Each row is delta-encoded (PNG's "Sub" filter, mod 256) then zlib-compressed and
  base64-encoded: smooth heatmaps shrink several-fold. The page undoes the three steps.
Grid rows run from x2 = +6 (top) to −6 (bottom) and columns from x1 = −6 to +6, so a
map can be drawn as an image without flipping.
"""
from __future__ import annotations

import base64
import zlib

import numpy as np

from app.data.features import expand
from app.nn import LOSS_NAME, OUTPUT_ACTIVATION
from app.numbers import finite_or_none, rounded

PLANE = 6.0
INLINE_WEIGHTS = 4096  # larger weight matrices travel quantised to int8


def grid_points(res: int) -> np.ndarray:
    """(res², 2) raw points covering [−6, 6]², top row first (x2 = +6)."""
    axis = np.linspace(-PLANE, PLANE, res)
    x1, x2 = np.meshgrid(axis, axis[::-1])
    return np.column_stack([x1.ravel(), x2.ravel()])


def quantise_signed(v: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.rint((v / scale + 1.0) * 127.5), 0, 255).astype(np.uint8)


def encode_blob(parts: list[np.ndarray]) -> str:
    """uint8 maps (each 2-D, rows first) → delta per row, zlib, base64."""
    rows = [np.diff(p, axis=1, prepend=np.zeros((p.shape[0], 1), np.uint8)) for p in parts]
    raw = b"".join(r.astype(np.uint8).tobytes() for r in rows)
    return base64.b64encode(zlib.compress(raw, 1)).decode("ascii")


class FrameBuilder:
    """Builds frames for one session; caches the grid and its feature expansion per config."""

    def __init__(self, grid: int = 100, thumb_stride: int = 4):
        self.res = grid
        self.stride = thumb_stride
        self._grid_key: tuple | None = None
        self._grid_features: np.ndarray | None = None

    def grid_features(self, features: list[str]) -> np.ndarray:
        key = (self.res, tuple(features))
        if key != self._grid_key:
            self._grid_features = expand(grid_points(self.res), list(features)).astype(np.float32)
            self._grid_key = key
        return self._grid_features

    def build(self, s, *, gradients: bool = False) -> dict:
        """The frame for Session `s` (see module docstring for the heatmap blob)."""
        cfg, model = s.cfg, s.model
        problem = cfg.problem
        with np.errstate(all="ignore"):
            probe_f = s._features(s.probe[None, :])
            probe_acts = model.layer_outputs(probe_f)  # [x, hidden…, output], each (1, units)
            probe_z = model.forward(probe_f)[0]
        names = s.input_names()
        out_act = OUTPUT_ACTIVATION[problem]
        layers = [{"units": len(names), "activation": "input", "names": names,
                   "activations": rounded(probe_acts[0][0])}]
        for l, (W, b) in enumerate(zip(model.W, model.b)):
            layer = {"units": int(W.shape[1]),
                     "activation": model.hidden[l] if l < len(model.hidden) else out_act,
                     "activations": rounded(probe_acts[l + 1][0]),
                     "z": rounded(probe_z[l][0])}
            layer.update(self._weights(W, b))
            layers.append(layer)

        frame = {
            "epoch": s.epoch, "step": s.step, "status": s.status, "message": s.message,
            "structure": s.structure, "problem": problem,
            "lr": s.lr,
            "loss": {"train": finite_or_none(s.loss_train), "test": finite_or_none(s.loss_test),
                     "regularization": finite_or_none(s.regularization_loss())},
            "layers": layers,
            "loss_layer": self._loss_layer(s, probe_acts[-1][0]),
            "probe": {"x": rounded(s.probe)},
            "metrics": s.metrics(),
        }
        if problem == "classification":
            frame["accuracy"] = {"train": finite_or_none(s.acc_train), "test": finite_or_none(s.acc_test)}
        if s.dims == 2:
            frame["heatmaps"] = self._heatmaps(s)
        if gradients:
            frame["gradients"] = self._gradients(s)
        return frame

    def _weights(self, W: np.ndarray, b: np.ndarray) -> dict:
        if W.size <= INLINE_WEIGHTS:
            return {"weights": rounded(W), "biases": rounded(b)}
        # Big layers are drawn as a weight-matrix image: int8 with one scale is plenty.
        scale = float(np.max(np.abs(W))) if np.isfinite(W).all() and W.size else 1.0
        scale = scale or 1.0
        q = np.clip(np.rint(np.nan_to_num(W) / scale * 127), -127, 127).astype(np.int8)
        return {"weights_q": {"scale": scale, "shape": list(W.shape),
                              "data": base64.b64encode(q.tobytes()).decode("ascii")},
                "biases": rounded(b)}

    def _loss_layer(self, s, out: np.ndarray) -> dict:
        problem = s.cfg.problem
        layer = {"kind": LOSS_NAME[problem], "train": finite_or_none(s.loss_train),
                 "test": finite_or_none(s.loss_test)}
        target = s.probe_target()
        if target is not None:
            if problem == "classification":
                layer["probe"] = finite_or_none(-np.log(max(float(out[int(target)]), 1e-300)))
            else:
                layer["probe"] = finite_or_none(0.5 * (float(out[0]) - target) ** 2)
            layer["target"] = target
        return layer

    def _heatmaps(self, s) -> dict:
        res, st = self.res, self.stride
        with np.errstate(all="ignore"):
            outs = s.model.layer_outputs(self.grid_features(s.cfg.features))  # [(res², units)…]
        thumbs, scales = [], []
        problem = s.cfg.problem
        for l, a in enumerate(outs):
            a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
            is_output = l == len(outs) - 1
            layer_scales = []
            for j in range(a.shape[1]):
                m = a[:, j].reshape(res, res)[::st, ::st]
                if is_output and problem == "classification":
                    scale = 1.0  # probabilities: 0…1 maps to the upper half of the byte range
                else:
                    scale = max(1.0, float(np.max(np.abs(m))))  # tanh-like units keep ±1; others shrink
                thumbs.append(quantise_signed(m, scale))
                layer_scales.append(round(scale, 4))
            scales.append(layer_scales)
        p = np.nan_to_num(outs[-1])
        if problem == "classification":
            k = p.shape[1]
            top = p.argmax(axis=1)
            conf = (p.max(axis=1) - 1.0 / k) / (1.0 - 1.0 / k)
            maps = [top.astype(np.uint8).reshape(res, res),
                    np.clip(np.rint(conf * 255), 0, 255).astype(np.uint8).reshape(res, res)]
            out_scale = 1.0
        else:
            out_scale = max(1.0, float(np.max(np.abs(p))))
            maps = [quantise_signed(p[:, 0], out_scale).reshape(res, res)]
        thumb = thumbs[0].shape[0]
        return {"res": res, "thumb": thumb, "scales": scales, "output_scale": round(out_scale, 4),
                "encoding": "sub+zlib+base64", "data": encode_blob(thumbs + maps)}

    def _gradients(self, s) -> dict:
        """∂loss/∂W and ∂loss/∂b over the whole training set; a neuron's gradient is its bias's."""
        d = s.data
        with np.errstate(all="ignore"):
            _, grads = s.model.loss_and_grads(d.f_train, d.train.y, need_loss=False)
        return {"batch": "train", "layers": [{"weights": rounded(grads[2 * l], 3), "biases": rounded(grads[2 * l + 1], 3)}
                                             for l in range(len(s.model.W))]}
