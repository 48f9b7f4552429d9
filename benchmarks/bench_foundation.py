"""Foundation figures: training epoch time, frame build time and frame size.

Run: .venv/bin/python benchmarks/bench_foundation.py
"""

from __future__ import annotations

import json

from common import median_ms, row, session_for

from app.frames import FrameBuilder


def main() -> None:
    s = session_for(seed=1)  # default: circle, 500 points (250 train), batch 10, 4-2 tanh
    print("Default network (circle, 250 training points, batch 10, 2-4-2-2 tanh/softmax)")
    row("training epoch (median)", f"{median_ms(lambda: s.train(1), repeats=200):.3f} ms")
    builder = FrameBuilder()
    row("frame build incl. 100×100 heatmaps (median)", f"{median_ms(lambda: builder.build(s), repeats=100):.3f} ms")
    frame = json.dumps(builder.build(s), separators=(",", ":"), allow_nan=False)
    row("bytes per frame (JSON)", f"{len(frame):,} B")


if __name__ == "__main__":
    main()
