"""Generating events from a trained flow: chunked on the device, mapped back, written as ROOT.

Events are drawn ``chunk_size`` at a time, so memory stays bounded whatever the total (10⁸
events stream to disk). Each chunk goes through the inverse of the scaler into data units and is
appended to the TTree. Rows with a non-finite value are not written; their number is logged and
returned, never hidden, and a sample with more of them than ``max_nonfinite_fraction`` allows,
or with no event at all, is refused (no file is left). The sampling time (µs/event) counts only
the flow's own sampling, synchronised on CUDA, not the scaling or the I/O.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from flowsim.data.scaling import Scaler
from flowsim.io import event_writer

__all__ = ["GeneratedChunks", "NonFiniteSampleError", "SamplingReport", "generate_to_root"]

log = logging.getLogger(__name__)


class NonFiniteSampleError(ValueError):
    """Too many generated events had a non-finite value (or none was finite)."""


@dataclass(frozen=True)
class SamplingReport:
    """What a sampling job did; ``us_per_event`` excludes scaling and I/O."""

    n_requested: int
    n_written: int
    n_nonfinite: int
    seconds_sampling: float
    seconds_total: float
    device: str

    @property
    def us_per_event(self) -> float:
        return 1e6 * self.seconds_sampling / max(self.n_requested, 1)

    @property
    def nonfinite_fraction(self) -> float:
        """Events left out for a non-finite value, over the events asked for."""
        return self.n_nonfinite / max(self.n_requested, 1)

    def as_row(self) -> dict[str, float | int | str]:
        return {
            "n_requested": self.n_requested,
            "n_written": self.n_written,
            "n_nonfinite": self.n_nonfinite,
            "nonfinite_fraction": self.nonfinite_fraction,
            "us_per_event": self.us_per_event,
            "seconds_sampling": self.seconds_sampling,
            "seconds_total": self.seconds_total,
            "device": self.device,
        }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: Events per call of a flow's ``sample`` on the CPU. A chunk of 10⁵ events makes every
#: intermediate (10⁵ × hidden floats) spill out of the caches; batches of 8192 ran 1.3-2x
#: faster for maf, rqs and mademog (``benchmarks/templates.py``). On a GPU a whole chunk is one call.
CPU_SAMPLE_BATCH = 8192


def _batches(n: int, size: int) -> list[int]:
    """``n`` split into batches of ``size`` (the last one shorter)."""
    return [min(size, n - start) for start in range(0, n, size)]


class GeneratedChunks:
    """The events of ``flow`` in data units, ``chunk_size`` at a time, rows with a non-finite
    value left out (and counted).

    Iterating draws ``n_events`` in order from one generator seeded with ``seed`` (on the CPU in
    calls of :data:`CPU_SAMPLE_BATCH` events), so the same arguments give the same events
    whatever consumes them (a ROOT file, or templates filled on the fly). Each chunk is a
    float32 array (n, features): the precision of the stored samples.
    After the iteration, ``n_finite``, ``n_nonfinite`` and ``seconds_sampling`` (the flow's own
    sampling, synchronised on CUDA) describe it.

    Raises :class:`NonFiniteSampleError` naming ``name`` as soon as more than
    ``max_nonfinite_fraction`` of ``n_events`` are known to be non-finite, or, at the end, when
    no event was finite.
    """

    def __init__(
        self,
        flow: nn.Module,
        scaler: Scaler,
        n_events: int,
        *,
        chunk_size: int = 100_000,
        seed: int = 0,
        max_nonfinite_fraction: float = 1e-3,
        name: str = "flow",
        progress_every: float = 10.0,
    ) -> None:
        if n_events < 1 or chunk_size < 1:
            raise ValueError(f"n_events and chunk_size must be positive, got {n_events}, {chunk_size}")
        if not 0.0 <= max_nonfinite_fraction <= 1.0:
            raise ValueError(f"max_nonfinite_fraction must lie in [0, 1], got {max_nonfinite_fraction}")
        self.flow, self.scaler, self.n_events = flow, scaler, int(n_events)
        self.chunk_size, self.seed, self.name = int(chunk_size), seed, name
        self.max_nonfinite_fraction, self.progress_every = max_nonfinite_fraction, progress_every
        self.device = next(flow.parameters()).device
        self.sample_batch = CPU_SAMPLE_BATCH if self.device.type == "cpu" else self.chunk_size
        self.n_finite = self.n_nonfinite = 0
        self.seconds_sampling = 0.0

    @property
    def features(self) -> list[str]:
        return list(self.scaler.features)

    def __iter__(self) -> Iterator[np.ndarray]:
        device, n_events = self.device, self.n_events
        generator = torch.Generator(device=device).manual_seed(self.seed)
        allowed = math.floor(self.max_nonfinite_fraction * n_events)
        self.n_finite = self.n_nonfinite = 0
        self.seconds_sampling = 0.0
        last_report = time.perf_counter()
        for start in range(0, n_events, self.chunk_size):
            n = min(self.chunk_size, n_events - start)
            _synchronize(device)
            t = time.perf_counter()
            z = torch.cat([
                self.flow.sample(m, generator=generator) for m in _batches(n, self.sample_batch)
            ])  # fmt: skip
            _synchronize(device)
            self.seconds_sampling += time.perf_counter() - t
            x = self.scaler.inverse(z.float().cpu().numpy()).astype(np.float32, copy=False)
            finite = np.isfinite(x).all(axis=1)
            if not finite.all():
                self.n_nonfinite += int(np.count_nonzero(~finite))
                x = x[finite]
                if self.n_nonfinite > allowed:  # more chunks cannot bring the fraction down
                    raise NonFiniteSampleError(
                        f"{self.name}: {self.n_nonfinite} of {n_events} generated events are "
                        f"non-finite (found in the first {start + n}), a fraction of at least "
                        f"{self.n_nonfinite / n_events:.3g}, above sampling.max_nonfinite_fraction "
                        f"= {self.max_nonfinite_fraction:g}; no sample is written"
                    )
            self.n_finite += len(x)
            yield x
            if time.perf_counter() - last_report > self.progress_every:
                last_report = time.perf_counter()
                done = start + n
                log.info("sampled %d / %d events (%.0f%%)", done, n_events, 100 * done / n_events)
        if self.n_finite == 0:
            raise NonFiniteSampleError(f"{self.name}: none of the {n_events} generated events is finite")
        if self.n_nonfinite:
            log.warning(
                "%d of %d generated events (a fraction of %.3g) had a non-finite value and were "
                "left out", self.n_nonfinite, n_events, self.n_nonfinite / n_events,
            )  # fmt: skip


def generate_to_root(
    flow: nn.Module,
    scaler: Scaler,
    n_events: int,
    path: str | os.PathLike[str],
    *,
    chunk_size: int = 100_000,
    seed: int = 0,
    max_nonfinite_fraction: float = 1e-3,
    name: str = "flow",
    progress_every: float = 10.0,
) -> SamplingReport:
    """Draw ``n_events`` from ``flow`` (in scaled space), unscale, write ``path`` atomically.

    The events are those of :class:`GeneratedChunks` with the same arguments. Raises
    :class:`NonFiniteSampleError` as it does; ``path`` is then not written.
    """
    chunks = GeneratedChunks(
        flow, scaler, n_events, chunk_size=chunk_size, seed=seed,
        max_nonfinite_fraction=max_nonfinite_fraction, name=name, progress_every=progress_every,
    )  # fmt: skip
    started = time.perf_counter()
    with event_writer(path, chunks.features) as writer:
        for x in chunks:
            writer.extend({feature: x[:, j] for j, feature in enumerate(chunks.features)})
    report = SamplingReport(
        n_events, chunks.n_finite, chunks.n_nonfinite, chunks.seconds_sampling,
        time.perf_counter() - started, str(chunks.device),
    )  # fmt: skip
    log.info(
        "wrote %d events to %s: %.2f µs/event sampling on %s, %.1f s in total",
        report.n_written, path, report.us_per_event, chunks.device, report.seconds_total,
    )  # fmt: skip
    return report
