"""The main analysis as a package, one module per stage: ``_inputs`` (folders, backend, stores, instructions,
layers, subjects), ``_dry_run`` (the plan's text), ``_assemble`` (scores.h5 from the finished fits), ``_ceilings``
(noise ceilings), ``_tables`` and ``_figures`` (the output folder's tables and figures), ``_run`` (the run
itself) and ``_results`` (a finished folder's tables).

Its face is :func:`run_analysis` and :class:`AnalysisResults` (:func:`read_results`); the input helpers below
are public for the benchmarks, which plan the same sweep, and :func:`select_layers` for the side studies (RSA and
the words study choose their layers with it).
"""
from ._inputs import (choose_instructions, choose_layers, open_stores, output_folder, run_feature_rows, select_layers,
                      work_folder)
from ._results import TABLES, AnalysisResults, read_results
from ._run import run_analysis

__all__ = ["TABLES", "AnalysisResults", "choose_instructions", "choose_layers", "open_stores", "output_folder",
           "read_results", "run_analysis", "run_feature_rows", "select_layers", "work_folder"]
