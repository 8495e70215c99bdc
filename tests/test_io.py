"""Atomic writes: a failed writer leaves nothing, a killed writer's temporary file does not stay."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from flowsim import io


def _killed_while_writing(target) -> list:
    """Run a writer of ``target`` in a subprocess that is SIGKILLed mid-write; its leftovers."""
    code = textwrap.dedent(
        f"""
        import os, signal
        from flowsim import io
        with io.atomic_output({str(target)!r}) as tmp:
            tmp.write_bytes(b"x" * 100_000)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert result.returncode == -signal.SIGKILL
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


def test_a_killed_writers_temporary_file_is_removed_by_the_next_writer(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    target = tmp_path / "generated.root"
    left = _killed_while_writing(target)
    assert len(left) == 1 and left[0].endswith(".root") and not target.exists()
    unrelated = [".generated.root.notmine", ".other.root.abcdefgh.root", "generated.root.bak",
                 ".generated.root.abcdefgh.json"]  # fmt: skip
    for name in unrelated:
        (tmp_path / name).write_text("keep")
    io.write_events(target, {"x": np.arange(10, dtype=np.float32)})
    assert io.root_entries(target) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*unrelated, "generated.root"])
    assert f"removed {tmp_path / left[0]} (0.1 MB), left by an earlier writer that was killed" in caplog.text


def test_a_failed_writer_leaves_neither_target_nor_temporary(tmp_path):
    target = tmp_path / "table.tsv"
    with pytest.raises(RuntimeError, match="disk full"):
        with io.atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_atomic_files_get_the_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        io.write_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(umask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_json_never_holds_nan_literals(tmp_path, bad):
    with pytest.raises(ValueError, match=r"a\.json: .*write null and say why"):
        io.write_json(tmp_path / "a.json", {"efficiency": bad})
    assert list(tmp_path.iterdir()) == []


def test_an_empty_samples_efficiency_is_null_with_the_reason(tmp_path):
    import json

    from flowsim.analysis.selection import SelectionCounts

    io.write_json(tmp_path / "s.json", SelectionCounts(0, 0, 0.5).as_dict())
    counts = json.loads((tmp_path / "s.json").read_text())  # strict JSON: no NaN in it
    assert counts["efficiency"] is None and counts["efficiency_undefined"] == "the sample has no events"
    assert SelectionCounts(10, 3, 0.5).as_dict()["efficiency"] == 0.3
