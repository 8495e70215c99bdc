"""The simplified search: templates, the HistFactory model (pyhf), fits, limits, luminosity scans.

Modules: ``config`` (validated settings), ``templates`` (efficiencies and yields), ``model``
(pyhf workspaces), ``likelihood`` (exact bin-by-bin profile likelihood), ``inference``
(asymptotic CLs, discovery significance, limits), ``results`` (typed containers) and ``scan``
(the luminosity scan). Import the submodules directly; this package imports nothing heavy.
"""
