"""Time to fit: how long until 95 % test accuracy, training as the server does
(epochs_per_frame epochs, then one frame built, per tick), and what each frame costs.

Run: .venv/bin/python benchmarks/bench_fit.py
"""

from __future__ import annotations

import json
import statistics
import time

from common import median_ms, preset_config, row, session_for

from app.frames import FrameBuilder

SPIRAL = dict(
    dataset="spiral",
    hidden_layers=[{"units": 8, "activation": "tanh"}] * 6,
    optimizer="adam",
    learning_rate=0.003,
    batch_size=10,
)
SEED_FIGURE = preset_config("seed")  # the seed article's figure, as the page's preset
SEEDS = (1, 2, 3)


def time_to_fit(config: dict, epochs_per_frame: int, seed: int, limit_s: float = 120.0) -> tuple[float, int]:
    """Wall seconds and epochs until test accuracy ≥ 95 %, building a frame after every tick."""
    s = session_for(seed=seed, **config)
    builder = FrameBuilder()
    start = time.perf_counter()
    while (s.acc_test or 0) < 0.95:
        s.train(epochs_per_frame)
        builder.build(s)
        if time.perf_counter() - start > limit_s:
            return float("inf"), s.epoch
    return time.perf_counter() - start, s.epoch


def report(name: str, config: dict, epochs_per_frame: int) -> None:
    print(f"\n{name}, {epochs_per_frame} epochs per frame, seeds {SEEDS}")
    runs = [time_to_fit(config, epochs_per_frame, seed) for seed in SEEDS]
    for seed, (secs, epochs) in zip(SEEDS, runs):
        row(f"seed {seed}: time to 95 % test accuracy", f"{secs:.2f} s", f"({epochs} epochs)")
    row(
        "median time to 95 %",
        f"{statistics.median(r[0] for r in runs):.2f} s",
        f"(median {statistics.median(r[1] for r in runs):.0f} epochs)",
    )
    s = session_for(seed=1, **config)
    s.train(epochs_per_frame)
    builder = FrameBuilder()
    row("frame build (median)", f"{median_ms(lambda: builder.build(s), repeats=50):.2f} ms")
    row("bytes per frame", f"{len(json.dumps(builder.build(s), separators=(',', ':'))):,} B")


def main() -> None:
    report("Spiral, 6 × 8 tanh, Adam lr 0.003, batch 10", SPIRAL, 50)
    report("Seed figure: digits 64 → 128 ReLU → 64 ReLU → 10 softmax, Adam lr 0.001, batch 32", SEED_FIGURE, 1)


if __name__ == "__main__":
    main()
