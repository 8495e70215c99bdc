"""flowsim: normalizing-flow surrogates for LHC Monte Carlo, from HIGGS CSV to pyhf limits."""

__version__ = "0.1.0"
