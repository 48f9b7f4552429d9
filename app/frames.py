"""Frames: what the page needs to repaint one moment of a session, as JSON-ready data.

A frame is built once per training tick and shared by every viewer of the session.
Numbers are rounded to what a screen can show, and NaN/∞ become null so a frame is
always valid JSON. Heatmaps over the input plane travel as one compact binary blob:

  blob = thumbnails of every neuron (input, hidden…, output), each T×T uint8, row-major,
         then the output plot's G×G maps, named in heatmaps.maps:
           ["p1"]          classification with 2 classes: p(class 1) → 0…255
           ["top", "conf"] more classes: argmax class, then confidence (p_max − 1/K)/(1 − 1/K) → 0…255
           ["value"]       regression: the output value, signed as below
  bytes: signed values v with scale s → round((v/s + 1)·127.5); class index as is.
         Thumbnails keep 7 bits: the same byte rounded to the nearest even number (≤ 254).
         The 8th bit is invisible on a 34 px thumbnail and costs a sixth of the blob.
  Each map is predicted pixel by pixel from its left (a), upper (b) and upper-left (c)
  neighbours (0 outside the map) with the median predictor of LOCO-I/JPEG-LS,
  pred = median(a, b, a + b − c), and only the residual (byte − pred) mod 256 is kept;
  the residuals are zlib-compressed (Z_RLE strategy: fast, and as small as level 9 here)
  and base64-encoded. Smooth maps leave mostly zero residuals. The page undoes the steps.
Grid rows run from x2 = +6 (top) to −6 (bottom) and columns from x1 = −6 to +6, so a
map can be drawn as an image without flipping. Thumbnails take every `stride`-th grid
point, centred: rows and columns offset, offset + stride, … with equal margins.
"""

from __future__ import annotations

import base64
import threading
import zlib

import numpy as np

from app.budget import GRID_MACS, INLINE_WEIGHTS, MIN_GRID, grid_side  # noqa: F401  (frames' sizes, shared with the estimate)
from app.data.features import expand
from app.data.plane import PLANE
from app.layout import COMPACT_UNITS
from app.nn import LOSS_NAME, OUTPUT_ACTIVATION, output
from app.numbers import finite_or_none, rounded, rounded_many

THUMB_STRIDE = 5  # 100×100 grid → 20×20 thumbnails


def grid_points(res: int) -> np.ndarray:
    """(res², 2) raw points covering [−6, 6]², top row first (x2 = +6)."""
    axis = np.linspace(-PLANE, PLANE, res)
    x1, x2 = np.meshgrid(axis, axis[::-1])
    return np.column_stack([x1.ravel(), x2.ravel()])


def quantise_signed(v: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.rint((v / scale + 1.0) * 127.5), 0, 255).astype(np.uint8)


def med_residuals(maps: np.ndarray) -> np.ndarray:
    """Maps (…, H, W) of whole numbers 0…255 (any dtype) → uint8 residuals against the
    median predictor, mod 256 (see module docstring)."""
    H, W = maps.shape[-2:]
    padded = np.zeros(maps.shape[:-2] + (H + 1, W + 1), np.int16)  # a zero row above, a zero column left
    padded[..., 1:, 1:] = maps
    a, b, c = padded[..., 1:, :-1], padded[..., :-1, 1:], padded[..., :-1, :-1]  # left, up, up-left
    # median(a, b, a + b − c) is a + b − c clipped to [min(a, b), max(a, b)]
    pred = a + b
    pred -= c
    np.maximum(pred, np.minimum(a, b), out=pred)
    np.minimum(pred, np.maximum(a, b), out=pred)
    np.subtract(padded[..., 1:, 1:], pred, out=pred)
    return pred.astype(np.uint8)  # two's complement: the residual mod 256


def encode_blob(parts: list[np.ndarray]) -> str:
    """Residual arrays (uint8, in blob order) → zlib (Z_RLE) → base64."""
    # memLevel 8: blocks of 16 K symbols, each with Huffman codes fitted to its own part of
    # the blob (thumbnails, output map), which here beats memLevel 9's longer blocks by 5 %.
    z = zlib.compressobj(1, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
    raw = b"".join(p.tobytes() for p in parts)
    return base64.b64encode(z.compress(raw) + z.flush()).decode("ascii")


SCRATCH_BYTES = 64 << 20  # per thread; a worker builds its frames one at a time on one thread
_scratch = threading.local()


def grid_scratch(n: int, sizes: list[int]) -> tuple[list[np.ndarray], np.ndarray]:
    """Float32 buffers for the grid pass of a network of `sizes` over n points, reused from
    frame to frame: fresh 10⁴-row arrays every frame cost more in page faults than the
    arithmetic does. The pool is shared by every session built on the thread (no frame keeps
    a reference to the buffers), so memory is bounded per worker, not per session: the
    least recently used shapes go first once the pool passes SCRATCH_BYTES."""
    pool: dict = _scratch.__dict__.setdefault("pool", {})
    key = (n, tuple(sizes))
    buffers = pool.pop(key, None)
    if buffers is None:
        buffers = ([np.ones((d + 1, n), np.float32) for d in sizes[1:-1]], np.empty((sizes[-1], n), np.float32))
    pool[key] = buffers  # most recently used last
    while len(pool) > 1 and sum(o.nbytes + sum(h.nbytes for h in hs) for hs, o in pool.values()) > SCRATCH_BYTES:
        del pool[next(iter(pool))]
    return buffers


def drop_grid_scratch() -> None:
    """Free this thread's pool (a worker with no sessions left has no use for it)."""
    _scratch.__dict__.pop("pool", None)


class FrameBuilder:
    """Builds frames for one session; caches the grid and its feature expansion per config."""

    def __init__(self, grid: int = 100, thumb_stride: int = THUMB_STRIDE):
        self.full_res = grid
        self.stride = thumb_stride
        self._set_res(grid)
        self._grid_key: tuple | None = None
        self._grid_features = np.empty((0, 0), np.float32)  # built for the first network's features
        self._grid_input = np.empty((0, 0), np.float32)

    def _set_res(self, res: int) -> None:
        self.res = res
        self.thumb = (res - 1) // self.stride + 1  # T
        self.offset = (res - 1 - self.stride * (self.thumb - 1)) // 2  # equal margins

    def res_for(self, sizes: list[int]) -> int:
        """The grid side for a network: the full grid, unless its forward pass would cost more
        than GRID_MACS multiply-adds (very wide layers), then a coarser grid that fits, so one
        frame of a huge network cannot hold up the other sessions on its worker."""
        return grid_side(sizes, self.full_res)

    def grid_features(self, features: list[str]) -> np.ndarray:
        """The grid's feature matrix (res², d0), float32."""
        key = (self.res, tuple(features))
        if key != self._grid_key:
            self._grid_features = expand(grid_points(self.res), list(features)).astype(np.float32)
            self._grid_input = np.ones((len(features) + 1, self.res * self.res), np.float32)
            self._grid_input[:-1] = self._grid_features.T
            self._grid_key = key
        return self._grid_features

    def grid_input(self, features: list[str]) -> np.ndarray:
        """The grid features transposed, with a row of ones: (d0 + 1, res²), as MLP.forward_by_unit wants."""
        self.grid_features(features)
        return self._grid_input

    def grid_buffers(self, sizes: list[int]) -> tuple[list[np.ndarray], np.ndarray]:
        """The float32 arrays MLP.forward_by_unit fills: (d + 1, res²) per hidden layer (last
        row ones) and (k, res²) for the output. See `grid_scratch`."""
        return grid_scratch(self.res * self.res, sizes)

    def build(self, s, *, gradients: bool = False) -> dict:
        """The frame for Session `s` (see module docstring for the heatmap blob)."""
        cfg, model = s.cfg, s.model
        problem = cfg.problem
        with np.errstate(all="ignore"):
            probe_f = s._features(s.probe[None, :])
            probe_z, probe_acts = model.forward(probe_f)  # each (1, units)
            probe_acts = probe_acts + [output(problem, probe_z[-1])]  # [x, hidden…, output]
        names = s.input_names()
        out_act = OUTPUT_ACTIVATION[problem]
        layers = [{"units": len(names), "activation": "input", "names": names}]
        # Every number of the layers, rounded in one go: (layer, key, array, significant digits).
        numbers = [(layers[0], "activations", probe_acts[0][0], 4)]
        for l, (W, b) in enumerate(zip(model.W, model.b)):
            layer = {"units": int(W.shape[1]), "activation": model.hidden[l] if l < len(model.hidden) else out_act}
            numbers += [
                (layer, "activations", probe_acts[l + 1][0], 4),
                (layer, "z", probe_z[l][0], 4),
            ]  # 4 digits: the inspector writes the sum out
            if W.size <= INLINE_WEIGHTS:  # 4 digits: the hover tooltip shows them
                numbers += [(layer, "weights", W, 4), (layer, "biases", b, 4)]
            else:
                layer.update(self._quantised(W, b))
            layers.append(layer)
        for (layer, key, _, _), value in zip(numbers, rounded_many([n[2] for n in numbers], [n[3] for n in numbers])):
            layer[key] = value

        frame = {
            "epoch": s.epoch,
            "step": s.step,
            "status": s.status,
            "message": s.message,
            "shape_version": s.shape_version,
            "config_version": s.config_version,
            "problem": problem,
            "lr": s.lr,
            "loss": {
                "train": finite_or_none(s.loss_train),
                "test": finite_or_none(s.loss_test),
                "regularization": finite_or_none(s.regularization_loss()),
            },
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

    def _quantised(self, W: np.ndarray, b: np.ndarray) -> dict:
        """Big layers are drawn as a weight-matrix image: int8 with one scale is plenty."""
        scale = float(np.max(np.abs(W))) if np.isfinite(W).all() and W.size else 1.0
        scale = scale or 1.0
        q = np.clip(np.rint(np.nan_to_num(W) / scale * 127), -127, 127).astype(np.int8)
        return {
            "weights_q": {
                "scale": scale,
                "shape": list(W.shape),
                "data": base64.b64encode(q.tobytes()).decode("ascii"),
            },
            "biases": rounded(b),
        }

    def _loss_layer(self, s, out: np.ndarray) -> dict:
        problem = s.cfg.problem
        layer = {"kind": LOSS_NAME[problem], "train": finite_or_none(s.loss_train), "test": finite_or_none(s.loss_test)}
        target = s.probe_y
        if target is not None:
            if problem == "classification":
                layer["probe"] = finite_or_none(-np.log(max(float(out[int(target)]), 1e-300)))
            else:
                # NumPy, not Python floats: a diverging output squares to inf (→ null), not OverflowError.
                with np.errstate(over="ignore", invalid="ignore"):
                    err = np.float64(out[0]) - np.float64(target)
                    layer["probe"] = finite_or_none(0.5 * err * err)
            layer["target"] = target
        return layer

    def _heatmaps(self, s) -> dict:
        res = self.res_for(s.model.sizes)
        if res != self.res:
            self._set_res(res)
        res, st, off = self.res, self.stride, self.offset
        model, problem = s.model, s.cfg.problem
        with np.errstate(all="ignore"):
            xa = self.grid_input(s.cfg.features)
            hidden, p = self.grid_buffers(model.sizes)
            model.forward_by_unit(xa, hidden, p)
            # Every neuron's thumbnail at once: (all units, T, T), input layer first.
            maps = [xa[:-1], *(h[:-1] for h in hidden), p]
            thumbs = np.concatenate([m.reshape(-1, res, res)[:, off::st, off::st] for m in maps])
            if not np.isfinite(thumbs).all():
                thumbs = np.nan_to_num(thumbs, nan=0.0, posinf=0.0, neginf=0.0)
            # Scale per neuron: tanh-like units keep ±1, larger ones shrink to fit.
            scales = np.maximum(np.abs(thumbs).max(axis=(1, 2)), 1.0)
            k = model.sizes[-1]
            if problem == "classification":
                scales[-k:] = 1.0  # probabilities: 0…1 maps to the upper half of the byte range
            thumbs /= scales[:, None, None]
            thumbs += 1.0
            thumbs *= 63.75  # (v/s + 1)·127.5, halved, so that rounding ×2 gives the nearest even byte
            np.rint(thumbs, out=thumbs)
            np.clip(thumbs, 0.0, 127.0, out=thumbs)
            thumbs *= 2.0  # whole numbers 0…254, exact in float32
            if not np.isfinite(p).all():
                p = np.nan_to_num(p)
            if problem != "classification":
                out_scale = max(1.0, float(np.max(np.abs(p))))
                names, maps = ["value"], [quantise_signed(p[0], out_scale)]
            elif k == 2:
                out_scale = 1.0
                names, maps = ["p1"], [np.clip(np.rint(p[1] * 255.0), 0, 255).astype(np.uint8)]
            else:
                out_scale = 1.0
                conf = (p.max(axis=0) - 1.0 / k) / (1.0 - 1.0 / k)
                names = ["top", "conf"]
                maps = [p.argmax(axis=0).astype(np.uint8), np.clip(np.rint(conf * 255), 0, 255).astype(np.uint8)]
        scale_list = [round(v, 4) for v in scales.tolist()]
        ends = np.cumsum(model.sizes).tolist()
        scale_lists = [scale_list[e - d : e] for d, e in zip(model.sizes, ends)]
        blob = [med_residuals(thumbs), med_residuals(np.stack(maps).reshape(-1, res, res))]
        return {
            "res": res,
            "thumb": self.thumb,
            "scales": scale_lists,
            "output_scale": round(out_scale, 4),
            "maps": names,
            "encoding": "med+zlib+base64",
            "data": encode_blob(blob),
        }

    def _gradients(self, s) -> dict:
        """∂loss/∂W and ∂loss/∂b over the whole training set; a neuron's gradient is its bias's.
        Only for layers drawn as links (both sides at most COMPACT_UNITS): the page shows no
        gradient for a weight-matrix image, and a wide layer's would make frames huge."""
        d = s.data
        with np.errstate(all="ignore"):
            _, grads = s.model.loss_and_grads(d.f_train, d.train.y, need_loss=False)
        drawn = [max(W.shape) <= COMPACT_UNITS and not (l == 0 and s.dims != 2) for l, W in enumerate(s.model.W)]
        return {
            "batch": "train",
            "layers": [
                {"weights": rounded(grads[2 * l], 3), "biases": rounded(grads[2 * l + 1], 3)} if drawn[l] else None
                for l in range(len(s.model.W))
            ],
        }
