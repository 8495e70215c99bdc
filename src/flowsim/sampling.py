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
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from flowsim.data.scaling import Scaler
from flowsim.io import event_writer

__all__ = ["NonFiniteSampleError", "SamplingReport", "generate_to_root"]

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

    Raises :class:`NonFiniteSampleError` naming ``name`` as soon as more than
    ``max_nonfinite_fraction`` of ``n_events`` are known to be non-finite, or when no event
    was finite; ``path`` is then not written.
    """
    if n_events < 1 or chunk_size < 1:
        raise ValueError(f"n_events and chunk_size must be positive, got {n_events}, {chunk_size}")
    if not 0.0 <= max_nonfinite_fraction <= 1.0:
        raise ValueError(f"max_nonfinite_fraction must lie in [0, 1], got {max_nonfinite_fraction}")
    device = next(flow.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    features = list(scaler.features)
    allowed = math.floor(max_nonfinite_fraction * n_events)
    nonfinite = written = 0
    sampling = 0.0
    started = last_report = time.perf_counter()
    with event_writer(path, features) as writer:
        for start in range(0, n_events, chunk_size):
            n = min(chunk_size, n_events - start)
            _synchronize(device)
            t = time.perf_counter()
            z = flow.sample(n, generator=generator)
            _synchronize(device)
            sampling += time.perf_counter() - t
            x = scaler.inverse(z.float().cpu().numpy())
            finite = np.isfinite(x).all(axis=1)
            if not finite.all():
                nonfinite += int(np.count_nonzero(~finite))
                x = x[finite]
                if nonfinite > allowed:  # more chunks cannot bring the fraction down
                    raise NonFiniteSampleError(
                        f"{name}: {nonfinite} of {n_events} generated events are non-finite "
                        f"(found in the first {start + n}), a fraction of at least "
                        f"{nonfinite / n_events:.3g}, above sampling.max_nonfinite_fraction = "
                        f"{max_nonfinite_fraction:g}; no sample is written"
                    )
            writer.extend({feature: x[:, j] for j, feature in enumerate(features)})
            written += len(x)
            if time.perf_counter() - last_report > progress_every:
                last_report = time.perf_counter()
                log.info("sampled %d / %d events (%.0f%%)", start + n, n_events, 100 * (start + n) / n_events)
        if written == 0:
            raise NonFiniteSampleError(f"{name}: none of the {n_events} generated events is finite")
    report = SamplingReport(
        n_events, written, nonfinite, sampling, time.perf_counter() - started, str(device)
    )
    if nonfinite:
        log.warning(
            "%d of %d generated events (a fraction of %.3g) had a non-finite value and were not "
            "written", nonfinite, n_events, report.nonfinite_fraction,
        )  # fmt: skip
    log.info(
        "wrote %d events to %s: %.2f µs/event sampling on %s, %.1f s in total",
        written, path, report.us_per_event, device, report.seconds_total,
    )  # fmt: skip
    return report
