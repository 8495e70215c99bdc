#!/usr/bin/env bash
# Install the flowsim package (src/) into this conda environment: Snakemake blocks PYTHONPATH in
# conda jobs, so the package must live in the environment. FLOWSIM_ROOT is set by the workflow.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation -e "${FLOWSIM_ROOT:?FLOWSIM_ROOT is set by the workflow}"
