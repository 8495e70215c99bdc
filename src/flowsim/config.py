"""Checks of a configuration that a JSON schema cannot express; each error names its key.

The schema (``workflow/schemas/config.schema.yaml``) fixes types, ranges and defaults; the
checks here relate keys to each other and to the file system.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["ConfigError", "check_config"]


class ConfigError(ValueError):
    """A configuration value that cannot work; the message starts with the key."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        super().__init__(f"config key '{key}': {problem}")


def check_config(config: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for the first cross-key inconsistency found."""
    _check_data(config)


def _check_data(config: Mapping[str, Any]) -> None:
    data = config["data"]
    if data["source"] == "path":
        path = data.get("path")
        if not path:
            raise ConfigError("data.path", "required when data.source is 'path'")
        if not Path(path).is_file():
            raise ConfigError("data.path", f"{path} is not a file")
        if not (str(path).endswith(".csv") or str(path).endswith(".csv.gz")):
            raise ConfigError("data.path", f"{path} must end in .csv or .csv.gz")
