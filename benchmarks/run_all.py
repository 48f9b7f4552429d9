"""Run benchmarks in turn; each prints its own figures.

run_all.py           every bench_*.py (make bench)
run_all.py --load    the load figures through a server: one_stream.py, many.py (WORKERS=1
                     and 2), latency.py (minutes, not seconds; soak.py and browser.py are
                     run on their own)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOAD = ["one_stream.py", "many.py", "latency.py"]

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--load", action="store_true", help="run " + ", ".join(LOAD) + " instead of bench_*.py")
args = ap.parse_args()

scripts = [HERE / name for name in LOAD] if args.load else sorted(HERE.glob("bench_*.py"))
for script in scripts:
    print(f"\n== {script.name} ==", flush=True)
    subprocess.run([sys.executable, str(script)], cwd=HERE, check=False)
