"""Small synthetic samples for the analysis tests: an exponential background, a Gaussian bump.

Every sample is "after the cut": values of the selected events plus the number of events before
the cut, as the workflow's scored samples are.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flowsim.analysis.templates import Template, make_template

EDGES = np.linspace(0.0, 3.0, 7)  # 6 bins keep pyhf's own fits (51 -> 13 parameters) quick


class Samples(NamedTuple):
    signal: Template
    test_a: Template
    test_b: Template
    ml: Template


def _selected(
    rng: np.random.Generator, n_total: int, efficiency: float, draw
) -> tuple[np.ndarray, int]:
    n_sel = rng.binomial(n_total, efficiency)
    return draw(n_sel), n_total


def make_samples(seed: int = 7, n_background: int = 40_000, n_signal: int = 10_000) -> Samples:
    rng = np.random.default_rng(seed)
    bump = lambda n: rng.normal(1.6, 0.3, n)  # noqa: E731
    falling = lambda n: rng.exponential(0.7, n)  # noqa: E731
    distorted = lambda n: rng.exponential(0.75, n)  # noqa: E731 - an imperfect "flow"
    return Samples(
        signal=make_template(*_selected(rng, n_signal, 0.6, bump), EDGES, name="signal"),
        test_a=make_template(*_selected(rng, n_background, 0.25, falling), EDGES, name="test_a"),
        test_b=make_template(*_selected(rng, n_background, 0.25, falling), EDGES, name="test_b"),
        ml=make_template(*_selected(rng, 2 * n_background, 0.25, distorted), EDGES, name="ml"),
    )


def pyhf_model(workspace: dict):
    """pyhf's model and data (observations + auxdata) of a workspace dict."""
    import pyhf

    ws = pyhf.Workspace(workspace)
    model = ws.model()
    return model, np.asarray(ws.data(model), dtype=float)
