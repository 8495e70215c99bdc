"""Plots of the workflow, in HEP style (mplhep), written as PNG for the Snakemake report."""
