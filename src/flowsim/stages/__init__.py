"""The stage layer: one module per stage of the workflow, one function per rule.

``flowsim.stages.<stage>`` matches ``workflow/rules/<stage>.smk`` and each rule's job script
calls exactly one function here, named after the rule (``train_flow``, ``c2st``, ...). A rule
function is the composition of two parts, so that each can be tested and reused alone:

* a *compute* function that reads the rule's inputs and returns a typed result, and
* a *writer* that takes that result and the rule's outputs as one named object (a frozen
  dataclass with one field per named output of the rule, built from Snakemake's by
  :func:`outputs_of`).

Where a rule's output is too large to hold (generated events, score friend trees) it is
streamed to its file while it is computed, and the writer writes the rest.

The stages sit on top of the library: ``flows``, ``metrics``, ``analysis``, ``data`` and
``plots`` never import from here.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, TypeVar

__all__ = ["PathLike", "outputs_of"]

PathLike = str | os.PathLike[str]

T = TypeVar("T")


def outputs_of(cls: type[T], named: Any) -> T:
    """The rule's outputs ``named`` (Snakemake's ``snakemake.output``, or any object or mapping
    with those attributes) as the dataclass ``cls``; a missing output raises naming it."""
    values = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = named.get(field.name) if isinstance(named, dict) else getattr(named, field.name, None)
        if value is None:
            raise TypeError(f"{cls.__name__}: the rule has no output named {field.name!r}")
        values[field.name] = value
    return cls(**values)
