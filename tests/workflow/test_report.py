"""The Snakemake report of a finished run: every plot with its caption, and the summary table."""

from __future__ import annotations

import zipfile

from tests.workflow.runner import TINY_CONFIG, snakemake


def test_report_holds_every_plot_caption_and_the_summary(tiny_run, tmp_path):
    report = tmp_path / "report.zip"
    snakemake(tiny_run, "--configfile", str(TINY_CONFIG), "--report", str(report))
    with zipfile.ZipFile(report) as archive:
        (page,) = [n for n in archive.namelist() if n.endswith("report.html")]
        html = archive.read(page).decode()
    plots = {p.name for p in (tiny_run / "results").rglob("*.png")}
    assert len(plots) > 20
    missing = sorted(name for name in plots if name not in html)
    assert not missing, f"plots not in the report: {missing}"
    assert "runs.tsv" in html and '"Summary"' in html
    for caption in ("One row per flow run", "Fitted signal strength", "Classifier scores (paper"):
        assert caption in html
