"""Reading and validation of HIGGS-layout files: good files read exactly, bad ones are named."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from decimal import Decimal

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
         "label '2' is neither 0"),
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


# ---------------------------------------------------------------------------------------------
# files as real people have them


def _text(rows: np.ndarray) -> list[str]:
    return [",".join(f"{v:.18e}" for v in r) for r in rows]


def _write(path, text: str):
    data = text.encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_last_line_without_line_end(tmp_path, higgs_rows, suffix):
    path = _write(tmp_path / f"h{suffix}", "\n".join(_text(higgs_rows)))
    sample = read_higgs(path)
    assert sample.n_rows == len(higgs_rows)
    np.testing.assert_array_equal(sample.signal[-1], higgs_rows[higgs_rows[:, 0] == 1][-1, 1:])


@pytest.mark.parametrize("tail", ["\n", "\n\n\n", "\r\n", "\r\n\r\n\r\n", "\n \n\t\n", "\n\n \t"])
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_blank_lines_after_the_last_event_are_accepted(tmp_path, higgs_rows, tail, suffix):
    newline = "\r\n" if "\r" in tail else "\n"
    path = _write(tmp_path / f"h{suffix}", newline.join(_text(higgs_rows)) + tail)
    assert read_higgs(path).n_rows == len(higgs_rows)


def test_many_blank_lines_at_the_end_span_blocks(tmp_path, higgs_rows):
    path = _write(tmp_path / "h.csv", "\n".join(_text(higgs_rows)) + "\n" * 50_000)
    rows = sum(len(b) for _, b in iter_blocks(path, block_bytes=10_000))
    assert rows == len(higgs_rows)


@pytest.mark.parametrize("blank", ["", "\r", "  ", "\t"])
@pytest.mark.parametrize("block_bytes", [10_000, 8 << 20])
def test_a_blank_line_between_events_stays_an_error(tmp_path, higgs_rows, blank, block_bytes):
    lines = _text(higgs_rows)
    lines[1999:1999] = [blank, blank]  # lines 2000 and 2001, then events again
    path = _write(tmp_path / "h.csv", "\n".join(lines) + "\n\n")
    with pytest.raises(HiggsFormatError, match=r"h\.csv, line 2000: empty line"):
        list(iter_blocks(path, block_bytes=block_bytes))


def test_blank_lines_before_a_last_line_without_line_end_are_errors(tmp_path, higgs_rows):
    lines = _text(higgs_rows[:10])
    path = _write(tmp_path / "h.csv", "\n".join(lines[:9]) + "\n\n" + lines[9])
    with pytest.raises(HiggsFormatError, match=r"h\.csv, line 10: empty line"):
        read_higgs(path)


def _with_label(text: str, n: int = 20) -> list[str]:
    lines = _text(make_rows(n, seed=3))
    lines[3] = text + lines[3][lines[3].index(","):]
    lines[4] = "1" + lines[4][lines[4].index(","):]  # both classes present
    lines[5] = "0" + lines[5][lines[5].index(","):]
    return lines


@pytest.mark.parametrize(
    "text",
    ["1", "1.", "1.0", "+1", "01", " 1", "1.000000000000000000e+00", "1E0", "0.1e1", "10e-1",
     "100.0E-2", "0", "-0", "+0.0", ".0", "0e5", "0.000000000000000000e+00", "0E-400"],
)  # fmt: skip
def test_labels_that_are_exactly_0_or_1_however_written(tmp_path, text):
    path = write_csv(tmp_path / "h.csv", _with_label(text))
    _, block = next(iter_blocks(path))
    assert block[3, 0] == float(Decimal(text.strip()))  # the exact value, independently


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0.99999999", "label '0.99999999' is neither 0"),  # 1.0 after float32 rounding
        ("1e-46", "label '1e-46' is neither 0"),  # 0.0 after float32 rounding
        ("1e-400", "label '1e-400' is neither 0"),  # 0.0 even in float64
        ("1.00000000000000000000001", "label '1.00000000000000000000001' is neither 0"),
        ("2", "label '2' is neither 0"),
        ("-1", "label '-1' is neither 0"),
        ("nan", r"non-finite value nan in column 1 \(label\)"),
        ("-inf", r"non-finite value -inf in column 1 \(label\)"),
        ("1_0", r"non-numeric value '1_0' in column 1 \(label\)"),
        ("", r"non-numeric value '' in column 1 \(label\)"),
        ("one", r"non-numeric value 'one' in column 1 \(label\)"),
    ],
)
def test_labels_are_judged_on_the_value_of_their_text(tmp_path, text, problem):
    path = write_csv(tmp_path / "h.csv", _with_label(text))
    with pytest.raises(HiggsFormatError, match=rf"h\.csv, line 4: {problem}"):
        read_higgs(path)


def test_an_underscore_in_a_number_is_named_with_its_line_and_column(tmp_path):
    lines = _text(make_rows(50, seed=2))
    fields = lines[6].split(",")
    fields[10] = "1_5"
    lines[6] = ",".join(fields)
    path = write_csv(tmp_path / "h.csv.gz", lines)
    with pytest.raises(HiggsFormatError, match=r"line 7: non-numeric value '1_5' in column 11 \(jet2_pt\)"):
        read_higgs(path)


def test_a_bad_label_before_a_bad_value_is_named_first(tmp_path):
    lines = _with_label("0.5")
    lines[9] = lines[9].replace(",", ",x", 1)
    path = write_csv(tmp_path / "h.csv", lines)
    with pytest.raises(HiggsFormatError, match=r"line 4: label '0.5'"):
        read_higgs(path)


# What pyarrow's float parser takes, decided by pyarrow itself: the reader's locator of bad
# values must agree with it, or a refused block could be blamed on the wrong line.
_CANDIDATES = [
    "1", "1.", "1.5", ".5", "+1.5", "-1.5", "1e5", "1E5", "1e+5", "1e-5", "1.5e", "e5", "1_5",
    " 1.5", "1.5 ", "\t1.5", "nan", "NaN", "-nan", "+nan", "inf", "-inf", "+inf", "Infinity",
    "-Infinity", "INF", "0x10", "1d5", "", "1.5.5", "--1", "1e5.5", "\u0661", "+.5", "-.5e-3",
    "00001", "1e0400", "1e-400", "1e", "1.e3", ".e3", ".", "1 5", "+-1", "١٢",
]  # fmt: skip


@pytest.mark.parametrize("text", _CANDIDATES)
def test_the_number_grammar_is_pyarrows(text):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from flowsim.data.reader import _NUMBER

    options = pacsv.ConvertOptions(column_types={"f0": pa.float32()}, null_values=[])
    try:
        pacsv.read_csv(
            pa.py_buffer(text.encode() + b"\n"),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
            convert_options=options,
        )
        pyarrow_takes_it = True
    except pa.ArrowInvalid:
        pyarrow_takes_it = False
    assert bool(_NUMBER.fullmatch(text.encode())) == pyarrow_takes_it


def test_truncated_gzip_counts_the_complete_lines_of_the_first_members(tmp_path, higgs_rows):
    text = [line + "\n" for line in _text(higgs_rows)]
    second = gzip.compress("".join(text[1000:]).encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(gzip.compress("".join(text[:1000]).encode()) + second[: len(second) // 3])
    complete = zlib.decompressobj(31).decompress(second[: len(second) // 3]).count(b"\n")
    with pytest.raises(HiggsFormatError, match=f"ends after {1000 + complete} complete lines"):
        read_higgs(path)
    path.write_bytes(gzip.compress("".join(text[:1000]).encode()) + second[:15])
    with pytest.raises(HiggsFormatError, match="ends after 1000 complete lines"):
        read_higgs(path)


@pytest.mark.parametrize("block_bytes", [10_000, 8 << 20])
def test_truncated_gzip_reads_and_checks_every_complete_line(tmp_path, higgs_rows, block_bytes):
    whole = gzip.compress("".join(line + "\n" for line in _text(higgs_rows)).encode())
    cut = whole[: len(whole) // 2]
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(cut)
    complete = zlib.decompressobj(31).decompress(cut).count(b"\n")
    rows = 0
    with pytest.raises(HiggsFormatError, match=f"ends after {complete} complete lines"):
        for _, block in iter_blocks(path, block_bytes=block_bytes):
            rows += len(block)
    assert rows == complete


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("h.csv", lambda text: gzip.compress(text), r"is gzip-compressed but named \.csv: rename it to h\.csv\.gz"),
        ("h.csv.gz", lambda text: text, r"is plain text, not gzip, although named \.gz: rename it to h\.csv$"),
        ("h.csv.gz", lambda text: bz2.compress(text), "is bzip2-compressed"),
        ("h.csv", lambda text: lzma.compress(text), "is xz-compressed"),
        ("h.csv", lambda text: b"\x00\x01" + text, "is neither text nor gzip"),
        ("h.csv.gz", lambda text: gzip.compress(text)[:10] + b"garbage" * 10, "cannot be decompressed"),
    ],
    ids=["gzip-named-csv", "text-named-gz", "bzip2", "xz", "binary", "corrupt-gzip"],
)  # fmt: skip
def test_a_file_whose_name_lies_is_told_what_it_is(tmp_path, higgs_rows, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content("".join(line + "\n" for line in _text(higgs_rows[:50])).encode()))
    with pytest.raises(HiggsFormatError, match=problem):
        read_higgs(path)


def test_a_stray_non_ascii_character_is_named_with_its_line(tmp_path):
    lines = _text(make_rows(50, seed=2))
    lines[2] = lines[2].replace(",", ",\u00e9", 1)
    path = write_csv(tmp_path / "h.csv", lines)
    with pytest.raises(HiggsFormatError, match="line 3: non-numeric value '\u00e9"):
        read_higgs(path)


def test_the_common_label_spellings_are_exact_ones():
    # the reader looks these up before any regex: each must be a text the regex calls exact
    import pyarrow.compute as pc

    from flowsim.data.reader import _COMMON_LABELS, _EXACT_LABEL

    assert pc.all(pc.match_substring_regex(_COMMON_LABELS, _EXACT_LABEL)).as_py()
    assert {float(Decimal(t)) for t in _COMMON_LABELS.to_pylist()} == {0.0, 1.0}
