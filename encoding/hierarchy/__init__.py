"""Layer hierarchy: which depth of a model best predicts each ROI, and does it rise from sensory to
association cortex? ``python -m encoding.hierarchy <output folder>`` runs it on an analysis."""
from ._analysis import hierarchy_analysis, roi_levels
from ._plot import plot_hierarchy
from ._profiles import bootstrap_profiles, group_preferred_depth, preferred_depth, roi_preferred_depth
from ._rank_test import hierarchy_rank_test

__all__ = ["bootstrap_profiles", "group_preferred_depth", "hierarchy_analysis", "hierarchy_rank_test",
           "plot_hierarchy", "preferred_depth", "roi_levels", "roi_preferred_depth"]
