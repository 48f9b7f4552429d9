"""Target 6: time from a control request to the first frame that shows it, one stream at
fps=60 on a playing session. Two routes: PATCH /api/sessions/{id} hidden_layers (a neuron
more or less, or another activation) and the htmx POST /ui/sessions/{id}/structure.

Run: .venv/bin/python benchmarks/latency.py [--samples 40] [--network default|spiral]
"""

from __future__ import annotations

import argparse
import random
import time

import httpx
from support import LiveServer, Samples, SPIRAL_6x8, SseReader, create, header, row, run_main, verdict


def first_hidden(frame: dict) -> dict:
    """What a control action changes, as a frame shows it."""
    return {
        "shape_version": frame["shape_version"],
        "units": frame["layers"][1]["units"],
        "activation": frame["layers"][1]["activation"],
    }


def latency(samples: int = 40, network: str = "default") -> dict:
    header(
        f"latency: control action → first frame showing it, one stream at fps=60 on a playing session "
        f"({network} network), {samples} samples per route"
    )
    config = {"seed": 3} if network == "default" else {"seed": 3, **SPIRAL_6x8}
    first_act = "tanh"
    out = {}
    with LiveServer() as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        sid, auth = create(c, **config)
        base_units = c.get(f"/api/sessions/{sid}").json()["config"]["hidden_layers"]
        reader = SseReader(f"{srv.url}/api/sessions/{sid}/events", {"fps": 60}, read_timeout=30.0)
        try:
            reader.response.raise_for_status()
            c.post(f"/api/sessions/{sid}/play", headers=auth).raise_for_status()
            if reader.wait_frame(lambda f: True, 0, 10) is None:
                raise RuntimeError("no frame within 10 s")
            time.sleep(1.0)
            rng = random.Random(0)
            for route in ("api", "ui"):
                to_frame = {"structure": Samples(), "activation": Samples()}
                to_reply, misses = Samples(), 0
                for k in range(samples):
                    time.sleep(rng.uniform(0.05, 0.15))  # frames keep flowing between actions
                    now = first_hidden(reader.latest_frame())
                    kind = "structure" if k % 2 == 0 else "activation"
                    if kind == "structure":
                        grow = now["units"] <= base_units[0]["units"]
                        units = now["units"] + (1 if grow else -1)

                        def pred(f, u=units, s=now["shape_version"]):
                            return first_hidden(f)["units"] == u or f["shape_version"] > s

                        layers = [{"units": units, "activation": now["activation"]}, *base_units[1:]]
                        form = {"op": "add_unit" if grow else "remove_unit", "layer": "0"}
                    else:
                        act = "relu" if now["activation"] == first_act else first_act

                        def pred(f, a=act):
                            return first_hidden(f)["activation"] == a

                        layers = [{"units": now["units"], "activation": act}, *base_units[1:]]
                        form = {"op": "activation", "layer": "0", "activation": act}
                    t0 = time.monotonic()
                    if route == "api":
                        r = c.patch(f"/api/sessions/{sid}", json={"hidden_layers": layers}, headers=auth)
                    else:
                        r = c.post(f"/ui/sessions/{sid}/structure", data=form, headers=auth)
                    t_reply = time.monotonic()
                    r.raise_for_status()
                    hit = reader.wait_frame(pred, t0, 5.0)
                    to_reply.add((t_reply - t0) * 1000)
                    if hit is None:
                        misses += 1
                        continue
                    to_frame[kind].add((hit[0] - t0) * 1000)
                both = Samples("ms", to_frame["structure"].values + to_frame["activation"].values)
                name = "PATCH /api/sessions/{id}" if route == "api" else "POST /ui/sessions/{id}/structure (htmx)"
                print(f"  {name}")
                both.print(
                    "    request → frame showing it (all)",
                    "median",
                    "p90",
                    note=f"{len(both)} samples, {misses} never seen",
                )
                for kind, xs in to_frame.items():
                    xs.print(f"      {kind} change", "median", "p90", note=f"{len(xs)} samples")
                to_reply.print("    request → response", "median", "p90")
                out[route] = {
                    "median": both.median,
                    "p90": both.stat("p90"),
                    "reply_median": to_reply.median,
                    "misses": misses,
                }
            c.post(f"/api/sessions/{sid}/pause", headers=auth)
        finally:
            reader.close()
        c.delete(f"/api/sessions/{sid}", headers=auth)
    srv.cleanup()
    ok = all(v["median"] <= 100 and v["misses"] == 0 for v in out.values())
    row("target 6: median ≤ 100 ms (API and htmx)", verdict(ok))
    out["ok"] = ok
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--network", choices=("default", "spiral"), default="default")
    args = ap.parse_args()
    run_main(lambda: latency(args.samples, args.network))


if __name__ == "__main__":
    main()
