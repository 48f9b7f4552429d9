"""Frame figures: time to build one frame (FrameBuilder.build) and its size as the worker
sends it (compact JSON), for the default network, the 6 × 8 tanh spiral and the seed figure.

Each network is trained for a few epochs first, so the heatmaps have the structure (and
the compressibility) of a network that has learned something.

Run: .venv/bin/python benchmarks/bench_frames.py
"""

from __future__ import annotations

import json

from common import median_ms, preset_config, row, session_for

from app.frames import FrameBuilder

TANH_6x8 = [{"units": 8, "activation": "tanh"}] * 6
SPIRAL = dict(dataset="spiral", hidden_layers=TANH_6x8, optimizer="adam", learning_rate=0.003, batch_size=10, noise=0)
SEED_FIGURE = preset_config("seed")  # the seed article's figure, as the page's preset
# (name, config, epochs trained before timing, further epoch counts at which to report the size)
NETWORKS = [
    ("Default network (circle, 2-4-2-2 tanh/softmax)", {}, 20, (0, 200)),
    ("6 × 8 tanh (spiral, features x1, x2), Adam", SPIRAL, 100, (0, 1000)),
    ("Seed figure (digits 64-128-64-10 ReLU, no heatmaps)", SEED_FIGURE, 3, ()),
]
PEER_GRID_PASS_6x8_MS = 78.7  # TensorFlow Playground, one 100×100 grid pass over all neurons
REPEATS = 300


def frame_bytes(frame: dict) -> int:
    return len(json.dumps(frame, separators=(",", ":"), allow_nan=False).encode())


def main() -> None:
    for name, config, epochs, more in NETWORKS:
        s = session_for(seed=1, **config)
        builder = FrameBuilder()
        sizes = {}
        for e in sorted({epochs, *more}):
            s.train(e - s.epoch)
            sizes[e] = frame_bytes(builder.build(s))
            if e == epochs:
                build_ms = median_ms(lambda b=builder, s=s: b.build(s), repeats=REPEATS)
                with_grads = frame_bytes(builder.build(s, gradients=True))
        print(name)
        row(f"frame build at epoch {epochs} (median of {REPEATS})", f"{build_ms:.2f} ms")
        for e, n in sizes.items():
            row(f"bytes per frame at epoch {e} (compact JSON)", f"{n:,} B")
        row(f"bytes per frame at epoch {epochs} with gradients", f"{with_grads:,} B")
        if s.dims == 2 and len(s.model.sizes) == 8:
            xa, (hidden, out) = builder.grid_input(s.cfg.features), builder.grid_buffers(s.model.sizes)
            grid_ms = median_ms(lambda m=s.model, x=xa, h=hidden, o=out: m.forward_by_unit(x, h, o), repeats=REPEATS)
            row("of which the 100×100 grid pass over all neurons", f"{grid_ms:.2f} ms")
    print("Peer: TensorFlow Playground, 6 × 8 hidden")
    row(
        "100×100 grid pass over all neurons",
        f"{PEER_GRID_PASS_6x8_MS:.1f} ms",
        "peer, measured on this kind of machine (from tf-playground-facts.md)",
    )


if __name__ == "__main__":
    main()
