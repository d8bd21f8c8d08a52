"""Statistics of encoding scores: noise ceilings, permutation tests, FDR, across-subject tests.

Pure functions on arrays; the analysis (``encoding.pipeline``) wires them to the fits.

- ``explainable_variance``, ``split_half_reliability``, ``repeat_ceiling``: a test movie watched
  several times; ``cross_subject_ceiling``: one subject predicted from the others, extrapolated
  over the number of subjects; ``normalize_r``/``roi_normalized_r``: r over its ceiling.
- ``block_permutations``, ``permutation_test``: each target's (and ROI's) test r against blocks
  of the response shuffled in time; ``fdr_bh``: Benjamini-Hochberg q-values.
- ``paired_tests``, ``one_sample_tests``: paired t and Wilcoxon tests over subjects.
"""
from ._ceilings import (explainable_variance, normalize_r, repeat_ceiling, roi_normalized_r,
                        split_half_reliability)
from ._cross_subject import (CrossSubjectCeiling, cross_subject_ceiling, extrapolate,
                             pairwise_correlations, subject_pool_scores)
from ._fdr import fdr_bh
from ._group import one_sample_tests, paired_tests
from ._permutation import BlockPermutations, PermutationResult, block_permutations, permutation_test

__all__ = [
    "BlockPermutations", "CrossSubjectCeiling", "PermutationResult", "block_permutations",
    "cross_subject_ceiling", "explainable_variance", "extrapolate", "fdr_bh", "normalize_r",
    "one_sample_tests", "pairwise_correlations", "paired_tests", "permutation_test", "repeat_ceiling",
    "roi_normalized_r", "split_half_reliability", "subject_pool_scores",
]
