#!/usr/bin/env python3
"""Ingestion speed and memory of the HIGGS reader, against plain decompression.

Writes (once, cached in benchmarks/out/) a HIGGS-layout file of --rows toy events printed with
%.18e like the UCI file, as .csv and .csv.gz, then for each: the time of ``gzip -dc FILE >
/dev/null`` (or ``cat`` for .csv), of flowsim's ``read_higgs`` (validated float32 arrays), and
of ``numpy.loadtxt`` on a slice as a slow peer; and read_higgs's peak memory above the
interpreter's baseline in units of the float32 array it returns. Each measurement runs in a
fresh subprocess so peak memory is its own.

    python benchmarks/ingest.py --rows 1000000 [--file PATH]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"

_MEASURE = r"""
import json, resource, sys, time
import numpy as np
from flowsim.data.reader import read_higgs
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
base = rss_mb()
t = time.perf_counter()
sample = read_higgs(sys.argv[1])
seconds = time.perf_counter() - t
array_mb = (sample.background.nbytes + sample.signal.nbytes) * 29 / 28 / 2**20
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
print(json.dumps({"seconds": seconds, "rows": sample.n_rows, "array_mb": array_mb, "peak_mb": peak}))
"""

_LOADTXT = r"""
import sys, time, numpy as np, itertools, gzip
path, n = sys.argv[1], int(sys.argv[2])
opener = gzip.open if path.endswith(".gz") else open
t = time.perf_counter()
with opener(path, "rt") as f:
    a = np.loadtxt(itertools.islice(f, n), delimiter=",", dtype=np.float32)
print(time.perf_counter() - t)
"""


def make_file(rows: int) -> tuple[Path, Path]:
    """The benchmark's .csv and .csv.gz (toy events, UCI-style %.18e text)."""
    import numpy as np

    from flowsim.data.toy import generate_toy

    OUT.mkdir(exist_ok=True)
    csv, gz = OUT / f"higgs-{rows}.csv", OUT / f"higgs-{rows}.csv.gz"
    if not csv.exists():
        print(f"writing {csv} ...", flush=True)
        np.savetxt(csv, generate_toy(rows, seed=1), fmt="%.18e", delimiter=",")
    if not gz.exists():
        print(f"writing {gz} ...", flush=True)
        with open(csv, "rb") as src, gzip.open(gz, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 16 << 20)
    return csv, gz


def best_of(repeat: int, fn) -> float:
    return min(fn() for _ in range(repeat))


def time_command(cmd: str) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True)
    return time.perf_counter() - t


def measure_reader(path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def measure_loadtxt(path: Path, rows: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _LOADTXT, str(path), str(rows)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return float(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--file", type=Path, action="append", help="measure these files instead")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loadtxt-rows", type=int, default=100_000)
    args = parser.parse_args()
    files = args.file or list(make_file(args.rows))

    print(f"\n{os.cpu_count()} cores; best of {args.repeat}\n")
    header = (
        f"{'file':<28} {'MB':>7} {'reference':>17} {'read_higgs':>11} {'ratio':>6} "
        f"{'Mrows/s':>8} {'MB/s':>6} {'peak/array':>10} {'loadtxt MB/s':>13}"
    )
    print(header)
    print("-" * len(header))
    for path in files:
        mb = path.stat().st_size / 2**20
        gz = path.suffix == ".gz"
        ref_cmd = f"gzip -dc '{path}' > /dev/null" if gz else f"cat '{path}' > /dev/null"
        ref = best_of(args.repeat, lambda cmd=ref_cmd: time_command(cmd))
        runs = [measure_reader(path) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["seconds"])
        text_mb = best["rows"] * (path.stat().st_size / best["rows"]) / 2**20
        if gz:
            with gzip.open(path, "rb") as f:
                text_mb = sum(len(b) for b in iter(lambda: f.read(16 << 20), b"")) / 2**20
        loadtxt = measure_loadtxt(path, args.loadtxt_rows)
        loadtxt_mbs = text_mb * args.loadtxt_rows / best["rows"] / loadtxt
        print(
            f"{path.name:<28} {mb:7.0f} {('gzip -dc' if gz else 'cat'):>8} {ref:7.2f} s "
            f"{best['seconds']:9.2f} s {best['seconds'] / ref:6.2f} "
            f"{best['rows'] / best['seconds'] / 1e6:8.2f} {text_mb / best['seconds']:6.0f} "
            f"{max(r['peak_mb'] for r in runs) / best['array_mb']:10.2f} {loadtxt_mbs:13.0f}"
        )
    print(
        "\nMB: file size; MB/s: uncompressed text parsed per second; peak/array: the reader's peak"
        "\nresident memory above the interpreter's, over the size of the float32 events it returns."
    )


if __name__ == "__main__":
    main()
