#!/usr/bin/env python3
"""Speed of the toy HIGGS generator: events/s of ``generate_toy`` and of ``write_toy_csv``.

Times ``generate_toy`` (in memory, float32) and ``write_toy_csv`` to a ``.csv.gz`` and a
``.csv`` file in a temporary directory, each the best of --repeat runs, and prints a table of
events/s and the written file sizes. Set OMP_NUM_THREADS=1 (the generator is plain numpy and
single-threaded; this pins any BLAS pool too) for a one-core figure; the goal is at least
200,000 events/s for ``generate_toy`` on one core.

    OMP_NUM_THREADS=1 python benchmarks/toy.py --events 1000000 [--repeat 3] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flowsim.data.toy import generate_toy, write_toy_csv


def _best_of(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Fastest wall-clock time of ``repeat`` calls, and the CPU time (all threads) of that call.

    The CPU time is the steadier figure on a shared machine; for ``write_toy_csv`` it exceeds
    the wall time because formatting and compression run in worker threads.
    """
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events per run")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--block-size", type=int, default=200_000, help="write_toy_csv block")
    args = parser.parse_args(argv)
    if args.events < 1 or args.repeat < 1:
        parser.error("--events and --repeat must be >= 1")

    generate_toy(1000, args.seed)  # warm-up: imports, allocator
    rows: list[tuple[str, tuple[float, float], str]] = []
    times = _best_of(lambda: generate_toy(args.events, args.seed), args.repeat)
    rows.append(("generate_toy (float32 array)", times, "-"))
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("HIGGS.csv.gz", "HIGGS.csv"):
            path = Path(tmp) / name

            def write(path: Path = path) -> None:
                write_toy_csv(path, args.events, args.seed, block_size=args.block_size)

            times = _best_of(write, args.repeat)
            size = f"{path.stat().st_size / 2**20:.1f} MiB"
            rows.append((f"write_toy_csv -> {name}", times, size))

    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(
        f"toy HIGGS generator, {args.events:,} events, best of {args.repeat}, "
        f"OMP_NUM_THREADS={threads}"
    )
    widths = {"wall s": 8, "events/s": 10, "CPU s": 8, "events/CPU-s": 13, "file": 10}
    print(f"{'task':<30} " + " ".join(f"{name:>{w}}" for name, w in widths.items()))
    for task, (wall, cpu), size in rows:
        print(
            f"{task:<30} {wall:>8.3f} {args.events / wall:>10,.0f} {cpu:>8.3f} "
            f"{args.events / cpu:>13,.0f} {size:>10}"
        )


if __name__ == "__main__":
    main()
