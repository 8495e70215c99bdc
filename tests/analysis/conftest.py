"""Fixtures of the analysis tests (see ``synthetic.py`` for the samples)."""

from __future__ import annotations

import pytest

from tests.analysis.synthetic import Samples, make_samples


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Silence pyhf 0.7's own jsonschema deprecation warning in these tests."""
    ignore = pytest.mark.filterwarnings(
        "ignore:jsonschema.RefResolver is deprecated:DeprecationWarning"
    )
    for item in items:
        if "tests/analysis/" in item.nodeid:
            item.add_marker(ignore)


@pytest.fixture(scope="session")
def samples() -> Samples:
    return make_samples()
