r"""Classifier feedback in flow training, "DiscFlow" (Butter, Plehn et al., seeds/004, "Reweighting
for Precision").

A classifier learns to tell the training events (label 1) from a sample of the trained flow
(label 0), both classes of equal total weight, so that at its optimum

.. math:: w_D(x) = \frac{D(x)}{1 - D(x)} = \frac{p_{data}(x)}{p_{flow}(x)}

(the classifier pieces are :mod:`flowsim.reweighting`'s). The flow is then fine-tuned on the
training events weighted by :math:`w_D^\alpha`, the DiscFlow loss

.. math:: \mathcal{L} = -\frac{\sum_i w_D(x_i)^\alpha \log p(x_i)}{\sum_i w_D(x_i)^\alpha},

which pulls the flow up where it falls short of the data and down where it overshoots, and
the round is repeated with a classifier of the fine-tuned flow. Why :math:`\alpha < 1`: a
fine-tune that converges fits :math:`p_{data} w_D^\alpha \propto p_{data}^{1+\alpha} /
p_{flow}^\alpha`, so a log-error :math:`\delta = \log(p_{data}/p_{flow})` becomes
:math:`-\alpha\delta`; :math:`\alpha = 1` would swap the error's sign without shrinking it, and
the default ½ halves it per round. (For the flow to N(0, 1) of data N(½, 1) a round moves the
mean from 0 to ¾; the tests check that.)

Only the training and validation splits are used: the classifier is fitted on the training
events, the validation events get their weights for early stopping, and the classifier's
AUC on the validation split against a fresh flow sample (held out from its fit) says how well
the flow matches before each round; 0.5 is indistinguishable. Weights above ``max_weight`` are
clipped before the power, and every set of weights is logged with its effective sample size
:math:`(\sum w)^2 / \sum w^2` (:func:`flowsim.weights.effective_sample_size`): a small one
means the fine-tune learns from few events.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from flowsim.errors import ConfigError
from flowsim.reweighting import CLASSIFIERS, Classifier, ReweightSettings, density_ratio_weights, fit_reweighter
from flowsim.weights import effective_sample_size

__all__ = [
    "FeedbackRound",
    "FeedbackSettings",
    "discriminator_round",
    "feedback_loop",
    "feedback_weights",
    "fit_discriminator",
    "flow_sampler",
    "parse_feedback",
]

log = logging.getLogger(__name__)

#: draws ``n`` events of the current flow (scaled space, possibly non-finite) with ``seed``
Sampler = Callable[[int, int], np.ndarray]

#: fine-tunes the flow in round ``r`` on the training/validation events weighted by
#: ``w_train``/``w_val``; returns what the round's record should say about it (best epoch, NLL, ...)
FineTune = Callable[[int, np.ndarray, np.ndarray], Mapping[str, Any]]


@dataclass(frozen=True)
class FeedbackSettings:
    """A run's classifier feedback (config ``flows.<run>.feedback``).

    ``rounds`` fine-tunes after the normal training, each with a new classifier; ``alpha`` the
    power of the weights, in (0, 1]; ``classifier`` ``tree`` (gradient-boosted trees) or ``mlp``
    (:class:`~flowsim.reweighting.ReweightSettings`' defaults otherwise); ``max_weight`` clips
    :math:`w_D` before the power.
    """

    rounds: int = 1
    alpha: float = 0.5
    classifier: str = "tree"
    max_weight: float = 10.0

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem is not None:
            raise ConfigError(f"feedback.{problem[0]}", problem[1])

    def reweight_settings(self) -> ReweightSettings:
        """The classifier of :mod:`flowsim.reweighting` these settings ask for."""
        return ReweightSettings(classifier=self.classifier, max_weight=self.max_weight)


def _problem(settings: FeedbackSettings) -> tuple[str, str] | None:
    """The first key of ``settings`` that cannot work and why; None if all can."""
    rounds, alpha, max_weight = settings.rounds, settings.alpha, settings.max_weight
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        return "rounds", f"expected an integer of at least 1, got {rounds!r}"
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
        return "alpha", f"expected a number in (0, 1], got {alpha!r}"
    if settings.classifier not in CLASSIFIERS:
        return "classifier", f"expected one of {list(CLASSIFIERS)}, got {settings.classifier!r}"
    if isinstance(max_weight, bool) or not isinstance(max_weight, (int, float)) or not max_weight > 1:
        return "max_weight", f"expected a number above 1, got {max_weight!r}"
    return None


def parse_feedback(section: Mapping[str, Any] | None, *, key: str) -> FeedbackSettings | None:
    """The settings of the config section ``key`` (e.g. ``flows.<run>.feedback``); None if it is
    absent or null (no feedback). Errors name ``key`` and the offending setting."""
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise ConfigError(key, f"expected a mapping of {_names()}, got {section!r}")
    unknown = sorted(set(section) - set(_names()))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", f"not a feedback setting; valid: {', '.join(_names())}")
    try:
        return FeedbackSettings(**section)
    except ConfigError as exc:
        raise ConfigError(f"{key}.{exc.key.removeprefix('feedback.')}", exc.problem) from None


def _names() -> list[str]:
    return list(FeedbackSettings.__dataclass_fields__)


def fit_discriminator(
    data: np.ndarray, flow_sample: np.ndarray, settings: FeedbackSettings = FeedbackSettings(), *, seed: int = 0
) -> Classifier:
    """D(x) = P(data | x), fitted on (n, F) training events against a flow sample, classes
    balanced (:func:`flowsim.reweighting.fit_reweighter`); at its optimum D/(1 − D) = p_data/p_flow."""
    return fit_reweighter(data, flow_sample, settings=settings.reweight_settings(), seed=seed)


def feedback_weights(
    classifier: Classifier, x: np.ndarray, *, alpha: float, max_weight: float, name: str = "events"
) -> tuple[np.ndarray, int]:
    r""":math:`\min(w_D(x), w_{max})^\alpha` with :math:`w_D = D/(1 - D)`, for each event of ``x``,
    and the number clipped; logged under ``name`` with the effective sample size."""
    ratio, n_clipped = density_ratio_weights(classifier, x, max_weight=max_weight)
    weights = ratio**alpha
    ess = effective_sample_size(weights)
    log.info(
        "feedback weights of %s: w_D^%g in [%.3g, %.3g], mean %.4f, effective sample size %.0f of %d "
        "(%.1f%%), %d w_D clipped at %g",
        name, alpha, weights.min(initial=math.inf), weights.max(initial=0.0), weights.mean(), ess, len(weights),
        100 * ess / max(len(weights), 1), n_clipped, max_weight,
    )  # fmt: skip
    return weights, n_clipped


@dataclass(frozen=True)
class FeedbackRound:
    """One classifier of the current flow: its validation AUC and the weights it gives."""

    round: int
    auc: float
    w_train: np.ndarray
    w_val: np.ndarray
    n_clipped: int
    n_flow_sample: int

    def record(self) -> dict[str, Any]:
        """Plain numbers for the model's metadata: the AUC, each split's effective sample size
        (absolute and as a fraction of its events), the clipped count."""
        ess_train, ess_val = effective_sample_size(self.w_train), effective_sample_size(self.w_val)
        return {
            "round": self.round,
            "auc": self.auc,
            "ess_train": ess_train,
            "ess_train_fraction": ess_train / len(self.w_train),
            "ess_val": ess_val,
            "ess_val_fraction": ess_val / len(self.w_val),
            "n_clipped": self.n_clipped,
            "n_flow_sample": self.n_flow_sample,
        }


def _finite(events: np.ndarray, what: str) -> np.ndarray:
    finite = np.isfinite(events).all(axis=1)
    if not finite.all():
        log.warning("%d of %d events of the %s are non-finite and left out", (~finite).sum(), len(events), what)
    return events[finite]


def _stream(seed: int, round_: int, which: int) -> int:
    """A seed per round and use (0: the classifier's sample, 1: the AUC's), apart from the
    training's own streams (which are ``seed · 1000003 + epoch (+ 500009)``)."""
    return (int(seed) * 1_000_003 + 900_001 + 2 * round_ + which) % (2**63)


def discriminator_round(
    sample: Sampler,
    x_train: np.ndarray,
    x_val: np.ndarray,
    settings: FeedbackSettings,
    *,
    round_: int,
    seed: int = 0,
    name: str = "flow",
) -> FeedbackRound:
    """Fit D on ``x_train`` against as many events of ``sample``, score the validation split
    against a fresh sample of its size (the AUC), and weight both splits by w_D^α.

    The AUC is that of D(x) between the validation events and the fresh flow events: neither
    was seen by the fit, so 0.5 means D finds no difference.
    """
    classifier, area, n_flow_sample = _discriminator(
        sample, x_train, x_val, settings, round_=round_, seed=seed, name=name
    )
    w_train, clipped_train = feedback_weights(
        classifier, x_train, alpha=settings.alpha, max_weight=settings.max_weight, name="the training split"
    )
    w_val, clipped_val = feedback_weights(
        classifier, x_val, alpha=settings.alpha, max_weight=settings.max_weight, name="the validation split"
    )
    return FeedbackRound(round_, area, w_train, w_val, clipped_train + clipped_val, n_flow_sample)


def _discriminator(
    sample: Sampler, x_train: np.ndarray, x_val: np.ndarray, settings: FeedbackSettings, *, round_: int, seed: int,
    name: str,
) -> tuple[Classifier, float, int]:  # fmt: skip
    """D fitted on ``x_train`` against as many events of ``sample``, its AUC on the validation
    split against a fresh sample of its size, and the size of the sample it was fitted on."""
    from flowsim.metrics.roc import auc

    flow_sample = _finite(sample(len(x_train), _stream(seed, round_, 0)), "flow sample")
    log.info("%s, feedback round %d: classifier of %d training vs %d flow events", name, round_, len(x_train),
             len(flow_sample))  # fmt: skip
    classifier = fit_discriminator(x_train, flow_sample, settings, seed=seed + round_)
    fresh = _finite(sample(len(x_val), _stream(seed, round_, 1)), "flow sample for the AUC")
    area = float(auc(classifier(x_val), classifier(fresh)))
    log.info("%s, feedback round %d: classifier AUC %.4f on the validation split vs the flow", name, round_, area)
    return classifier, area, len(flow_sample)


def feedback_loop(
    sample: Sampler,
    x_train: np.ndarray,
    x_val: np.ndarray,
    settings: FeedbackSettings,
    fine_tune: FineTune,
    *,
    seed: int = 0,
    name: str = "flow",
) -> dict[str, Any]:
    """``settings.rounds`` DiscFlow rounds: fit D against the current flow (``sample`` must draw
    from the flow that ``fine_tune`` changes), weight the splits by w_D^α, fine-tune; then one
    more classifier, for the AUC after the last round only.

    Returns:
        ``{"settings": ..., "rounds": [record, ...], "auc_after": ...}``: each round's
        :meth:`FeedbackRound.record` (taken before its fine-tune) with what ``fine_tune``
        returned, and the AUC of the final flow; plain values, for the model's metadata.
    """
    rounds = []
    for r in range(1, settings.rounds + 1):
        weights = discriminator_round(sample, x_train, x_val, settings, round_=r, seed=seed, name=name)
        outcome = fine_tune(r, weights.w_train, weights.w_val)
        rounds.append({**weights.record(), **dict(outcome)})
    # the final flow's classifier: only its AUC, no weights
    _, auc_after, _ = _discriminator(sample, x_train, x_val, settings, round_=settings.rounds + 1, seed=seed, name=name)
    log.info(
        "%s: classifier AUC %s over %d feedback round(s), %.4f after the last",
        name, " -> ".join(f"{row['auc']:.4f}" for row in rounds), settings.rounds, auc_after,
    )  # fmt: skip
    return {"settings": asdict(settings), "rounds": rounds, "auc_after": auc_after}


def flow_sampler(model: torch.nn.Module, *, chunk_size: int = 65_536) -> Sampler:
    """A :data:`Sampler` of ``model`` (a flow or its sign-flip mixture) as it is when called:
    events drawn on its device, ``chunk_size`` at a time (a training split's worth at once could
    fill a GPU), from one generator seeded per call; returned on the CPU in the model's dtype."""

    def sample(n: int, seed: int) -> np.ndarray:
        device = next(model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(seed)
        with torch.no_grad():
            chunks = [
                model.sample(min(chunk_size, n - start), generator=generator).cpu().numpy()
                for start in range(0, n, chunk_size)
            ]
        return np.concatenate(chunks) if chunks else np.empty((0, 0))

    return sample
