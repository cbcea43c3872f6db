"""Run the speed and memory benchmarks and write their figures beside a bench report.

Each script runs in its own process (nothing else should run meanwhile: they time the CPU);
its printed figures go into OUT/speed.md, which ``utom bench --out OUT`` appends to bench.md.

    python benchmarks/run_all.py --out BENCH_DIR [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = {
    "train_speed.py": [],
    "predict_throughput.py": ["--quick"],
    "predict_memory.py": [],
    "seams.py": [],
}
QUICK = {"predict_memory.py": ["--sizes", "2048", "8192"]}
"""--quick: smaller images where a script's default takes minutes."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sections = ["## Speed and memory", "",
                "Printed by the scripts in `benchmarks/` (`python benchmarks/run_all.py`).", ""]
    for script, options in SCRIPTS.items():
        options = QUICK.get(script, options) if args.quick else options
        command = [sys.executable, str(HERE / script), *options]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        shown = " ".join(["python", f"benchmarks/{script}", *options])
        output = done.stdout.strip() if done.returncode == 0 else (
            f"failed (exit {done.returncode}):\n{done.stderr.strip()[-2000:]}")
        sections += [f"### `{shown}` ({seconds:.0f} s)", "", "```", output, "```", ""]
        print(f"{script}: exit {done.returncode}, {seconds:.0f} s", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.md").write_text("\n".join(sections), encoding="utf-8")
    print(args.out / "speed.md")


if __name__ == "__main__":
    main()
