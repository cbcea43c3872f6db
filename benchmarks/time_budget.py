"""How closely ``--minutes`` fills the time asked: asked vs actual training minutes.

Runs the real command ``utom run TASK --budget BUDGET --minutes M --threads T`` on the task's
bundled demo data, and prints the plan (iterations, step and periodic costs the trial timed),
the training loop's own time (from its last progress line), the ratio actual/asked (the plan
aims at 1.0 ± 0.1) and the run's training time with data loading (metrics.json). Run it on a
quiet machine: other work slows the steps after the trial and the run overruns.

    python benchmarks/time_budget.py --minutes 5 --threads 2                 # one run
    python benchmarks/time_budget.py --minutes 0.5 --threads 1 --budget quick # wiring, a minute
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOP = re.compile(r"training: (\d+)/(\d+) iterations in (?:(\d+):)?(\d+):(\d+)")
PLAN = re.compile(r"training: (planned .*)")


def loop_seconds(log: str) -> float:
    """The training loop's time, from its last plain progress line (``N/N iterations in
    m:ss``)."""
    found = LOOP.findall(log)
    if not found:
        raise SystemExit("no final training line in the log:\n" + log[-2000:])
    hours, minutes, seconds = found[-1][2:]
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="stain-he")
    parser.add_argument("--budget", default="demo")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="Keep the run here.")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="utom-time-budget-")) / "run"
    env = {**os.environ, "UTOM_PROGRESS_SECONDS": "10"}
    command = ["utom", "run", args.task, "--budget", args.budget, "--minutes",
               str(args.minutes), "--threads", str(args.threads), "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    log = done.stdout + done.stderr
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{log[-2000:]}")
    plan = PLAN.search(log)
    loop = loop_seconds(log)
    record = json.loads((out / "metrics.json").read_text())
    print(f"utom time budget {time.strftime('%Y-%m-%d %H:%M')}: {args.task}, budget "
          f"{args.budget}, {args.threads} thread(s), {os.cpu_count()} CPUs")
    print(f"plan                  {plan.group(1) if plan else '(none printed)'}")
    print(f"asked                 {args.minutes:.2f} min")
    print(f"training loop         {loop / 60:.2f} min ({record['iterations']} iterations)")
    print(f"actual / asked        {loop / 60 / args.minutes:.2f}")
    print(f"data + training       {record['train_seconds'] / 60:.2f} min")
    print(f"whole command         {wall / 60:.2f} min")


if __name__ == "__main__":
    main()
