"""Representational similarity analysis: RDMs from feature layers and brain ROIs, and their comparison.

Private modules hold one idea each, re-exported here:

- ``_rdm``: RDMs from item patterns (1 - Pearson, 1 - cosine, Euclidean), square <-> upper triangle;
- ``_crossnobis``: cross-validated Mahalanobis RDMs across runs, shrunk noise covariance;
- ``_compare``: Spearman, Kendall's tau-a, Pearson; partial and semipartial correlation;
- ``_inference``: Mantel permutation tests, bootstrap over items and subjects, noise ceilings;
- ``_patterns``: item patterns from feature rows and from fMRI runs (item GLM per run);
- ``_embeddings``: model RDMs given as an item embedding or similarity matrix file (e.g. a SPoSE fit);
- ``_maps``: layer x ROI rows in the tidy table format of ``alignment.csv``;
- ``_config`` and ``_run``: the ``python -m encoding.rsa`` command.
"""
from ._compare import COMPARISONS, compare_rdms, kendall_tau_a, partial_correlation, semipartial_correlation
from ._crossnobis import crossnobis_rdm, noise_covariance, noise_precision
from ._embeddings import item_matrix_rdm, read_item_matrix
from ._inference import (BootstrapResult, MantelResult, bootstrap_items, bootstrap_subjects, item_bootstrap_samples,
                         mantel_test, noise_ceiling, rsa_score)
from ._rdm import METRICS, pattern_rdm, permute_items, square_rdm, upper_triangle

__all__ = [
    "BootstrapResult", "COMPARISONS", "METRICS", "MantelResult", "bootstrap_items", "bootstrap_subjects",
    "compare_rdms", "crossnobis_rdm", "item_bootstrap_samples", "item_matrix_rdm", "kendall_tau_a", "mantel_test",
    "noise_ceiling", "noise_covariance", "noise_precision", "partial_correlation", "pattern_rdm", "permute_items",
    "read_item_matrix", "rsa_score", "semipartial_correlation", "square_rdm", "upper_triangle",
]
