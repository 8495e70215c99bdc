"""Reading and validation of HIGGS-layout files: good files read exactly, bad ones are named."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from flowsim.data.reader import HiggsFormatError, iter_blocks, read_higgs
from tests.higgs_files import make_rows, write_csv


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_reads_every_row_exactly(tmp_path, higgs_rows, suffix):
    path = write_csv(tmp_path / f"h{suffix}", higgs_rows)
    sample = read_higgs(path)
    is_sig = higgs_rows[:, 0] == 1
    assert sample.n_rows == len(higgs_rows)
    np.testing.assert_array_equal(sample.background, higgs_rows[~is_sig, 1:])
    np.testing.assert_array_equal(sample.signal, higgs_rows[is_sig, 1:])


def test_first_row_is_an_event_not_a_header(tmp_path, higgs_rows):
    path = write_csv(tmp_path / "h.csv", higgs_rows)
    first_line, block = next(iter_blocks(path))
    assert first_line == 1
    np.testing.assert_array_equal(block[0], higgs_rows[0])


def test_small_blocks_number_lines_across_block_borders(tmp_path, higgs_rows):
    rows = [",".join(f"{v:.18e}" for v in r) for r in higgs_rows]
    rows[2500] = rows[2500].replace(",", ",x", 1)
    path = write_csv(tmp_path / "h.csv", rows)
    with pytest.raises(HiggsFormatError, match=r"h\.csv, line 2501: non-numeric value 'x"):
        list(iter_blocks(path, block_bytes=10_000))


def test_max_rows_reads_the_first_rows(tmp_path, higgs_rows):
    path = write_csv(tmp_path / "h.csv.gz", higgs_rows)
    blocks = [b for _, b in iter_blocks(path, max_rows=1234, block_bytes=50_000)]
    np.testing.assert_array_equal(np.concatenate(blocks), higgs_rows[:1234])


def _lines(n=50):
    return [",".join(f"{v:.18e}" for v in r) for r in make_rows(n, seed=2)]


@pytest.mark.parametrize(
    ("edit", "line", "message"),
    [
        (lambda L: L.__setitem__(9, L[9].rsplit(",", 1)[0]), 10, "expected 29 columns, found 28"),
        (lambda L: L.__setitem__(9, L[9] + ",1.0"), 10, "expected 29 columns, found 30"),
        (lambda L: L.__setitem__(4, L[4].replace(",", ",abc", 1)), 5,
         "non-numeric value 'abc.*' in column 2 \\(lepton_pt\\)"),
        (lambda L: L.__setitem__(6, "0," + ",".join(["nan"] * 28)), 7,
         "non-finite value nan in column 2"),
        (lambda L: L.__setitem__(6, "1," + ",".join(["1.0"] * 27) + ",inf"), 7,
         "non-finite value inf in column 29 \\(m_wwbb\\)"),
        (lambda L: L.__setitem__(11, "2" + L[11][L[11].index(","):]), 12,
         "label 2.0 is neither 0"),
        (lambda L: L.__setitem__(3, ""), 4, "empty line"),
        (lambda L: L.__setitem__(8, L[8].replace(",", ",,", 1)), 9, "expected 29 columns, found 30"),
    ],
    ids=["too-few-columns", "too-many-columns", "non-numeric", "nan", "inf", "bad-label",
         "empty-line", "empty-field"],
)  # fmt: skip
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_bad_rows_are_named_by_file_and_line(tmp_path, edit, line, message, suffix):
    lines = _lines()
    edit(lines)
    path = write_csv(tmp_path / f"bad{suffix}", lines)
    with pytest.raises(HiggsFormatError, match=f"bad{suffix}, line {line}: {message}") as info:
        read_higgs(path)
    assert info.value.line == line


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_empty_file(tmp_path, suffix):
    path = write_csv(tmp_path / f"empty{suffix}", [])
    with pytest.raises(HiggsFormatError, match=f"empty{suffix}: empty file"):
        read_higgs(path)


def test_truncated_gzip(tmp_path, higgs_rows):
    whole = write_csv(tmp_path / "whole.csv.gz", higgs_rows).read_bytes()
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(HiggsFormatError, match=r"cut\.csv\.gz: truncated gzip stream"):
        read_higgs(path)


def test_not_gzip(tmp_path, higgs_rows):
    path = tmp_path / "plain.csv.gz"
    path.write_bytes(b"0,1,2\n")
    with pytest.raises(HiggsFormatError, match=r"plain\.csv\.gz: cannot be decompressed"):
        read_higgs(path)


def test_missing_file(tmp_path):
    with pytest.raises(HiggsFormatError, match="nothere.csv: no such file"):
        read_higgs(tmp_path / "nothere.csv")


@pytest.mark.parametrize(("label", "name"), [(0, "signal"), (1, "background")])
def test_one_class_missing(tmp_path, higgs_rows, label, name):
    higgs_rows[:, 0] = label
    path = write_csv(tmp_path / "one.csv", higgs_rows)
    with pytest.raises(HiggsFormatError, match=f"one.csv: no {name} events"):
        read_higgs(path)


def test_concatenated_gzip_members_are_read_whole(tmp_path, higgs_rows):
    # pigz/bgzip-style files are several gzip members back to back
    text = [",".join(f"{v:.18e}" for v in r) + "\n" for r in higgs_rows]
    path = tmp_path / "multi.csv.gz"
    path.write_bytes(
        gzip.compress("".join(text[:1000]).encode()) + gzip.compress("".join(text[1000:]).encode())
    )
    assert read_higgs(path).n_rows == len(higgs_rows)


def test_crlf_line_ends(tmp_path, higgs_rows):
    lines = [",".join(f"{v:.18e}" for v in r) for r in higgs_rows[:100]]
    path = tmp_path / "dos.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    sample = read_higgs(path)
    assert sample.n_rows == 100
