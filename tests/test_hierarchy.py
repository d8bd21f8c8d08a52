"""Layer hierarchy: a planted depth gradient across ROIs is recovered and its rank test is significant."""
import numpy as np
import pandas as pd
import pytest

from encoding.demo.toy_study import ROIS
from encoding.hierarchy import hierarchy_rank_test, preferred_depth, roi_preferred_depth
from encoding.hierarchy.__main__ import main
from toy_output import toy_output

N_LAYERS = 13
DEPTH = np.linspace(0, 1, N_LAYERS)
# ROI -> (level, planted preferred depth): sensory ROIs peak early, association ROIs late
PLANTED = {"V1": (1, 0.1), "A1": (1, 0.15), "LO": (2, 0.3), "MT": (2, 0.35), "STS": (3, 0.55),
           "AG": (4, 0.7), "IFG": (5, 0.85), "dmPFC": (6, 0.95)}


def _targets(rng, peak, n_targets=300):
    """Per-target scores over layers: a bump at the planted depth, per-target gain, and noise."""
    bump = np.exp(-0.5 * ((DEPTH - peak) / 0.12) ** 2)
    gain = rng.uniform(0.1, 0.3, size=(n_targets, 1))
    return gain * bump + 0.05 * rng.standard_normal((n_targets, N_LAYERS))


@pytest.fixture(scope="module")
def recovered():
    rng = np.random.default_rng(0)
    return {roi: roi_preferred_depth(DEPTH, _targets(rng, peak), n_bootstrap=300, seed=i)
            for i, (roi, (_, peak)) in enumerate(PLANTED.items())}


@pytest.mark.parametrize("roi", list(PLANTED))
def test_recovers_planted_preferred_depth_per_roi(recovered, roi):
    planted = PLANTED[roi][1]
    result = recovered[roi]
    assert abs(result["argmax"] - planted) <= 1 / (N_LAYERS - 1)          # within one layer
    assert result["weighted"] == pytest.approx(planted, abs=0.08)
    low, high = result["weighted_ci"]
    assert low <= result["weighted"] <= high and high - low < 0.1


def test_rank_test_of_the_planted_gradient_is_significant(recovered):
    levels = [level for level, _ in PLANTED.values()]
    result = hierarchy_rank_test(levels, [recovered[roi]["weighted"] for roi in PLANTED])
    assert result["n_rois"] == 8
    assert result["rho"] > 0.95
    assert result["p"] < 0.001                     # exact over 8! orderings


def test_rank_test_without_a_gradient_is_not_significant():
    rng = np.random.default_rng(1)
    levels = np.repeat([1, 2, 3, 4, 5], 4)
    p = [hierarchy_rank_test(levels, rng.uniform(size=20), n_permutations=2000, seed=s)["p"] for s in range(200)]
    assert 0.03 < np.mean(np.array(p) < 0.05) < 0.08


def test_weighted_depth_is_not_pulled_to_the_middle_by_a_positive_floor():
    profile = 0.2 + np.where(DEPTH == 0, 0.1, 0.0)                       # every layer positive, peak at 0
    argmax, weighted = preferred_depth(DEPTH, profile)
    assert argmax == 0 and weighted == pytest.approx(0.0)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return toy_output(tmp_path_factory.getbasetemp() / "toy-study")


def test_cli_recovers_the_toy_study_depth_gradient(toy, tmp_path, capsys):
    assert main([str(toy), "--output-dir", str(tmp_path), "--n-bootstrap", "200", "--quiet"]) == 0
    rows = pd.read_csv(tmp_path / "hierarchy.csv")
    tests = pd.read_csv(tmp_path / "hierarchy_tests.csv")
    caption = rows[(rows["subject"] == "group") & (rows["instruction"] == "caption")].set_index("roi")
    # ROI k of the toy study is driven by layer k of 5: planted depth k / 4
    np.testing.assert_allclose(caption.loc[list(ROIS), "preferred_depth_argmax"], np.arange(5) / 4)
    assert caption["in_rank_test"].all() and (caption["n_subjects"] == 3).all()
    group = tests[(tests["subject"] == "group") & (tests["instruction"] == "caption")].set_index("measure")
    assert group.loc["argmax", "spearman_rho"] == pytest.approx(1.0)
    assert group.loc["argmax", "p_permutation"] == pytest.approx(1 / 120)   # exact: 5! orderings
    assert (tmp_path / "hierarchy_group_toy_caption.png").stat().st_size > 0
    assert "spearman_rho" in capsys.readouterr().out


def test_cli_error_names_the_missing_file(tmp_path, capsys):
    assert main([str(tmp_path), "--quiet"]) == 2
    assert "scores.h5" in capsys.readouterr().err


def test_plot_gives_every_roi_in_the_rank_test_its_own_colour_even_within_a_level():
    from matplotlib.colors import to_hex

    from encoding.hierarchy import plot_hierarchy

    rows = [{"roi": roi, "level": level, "in_rank_test": roi != "dmPFC", "preferred_depth_weighted": peak,
             "weighted_ci_low": peak - 0.05, "weighted_ci_high": peak + 0.05}
            for roi, (level, peak) in PLANTED.items()]
    profiles = {roi: np.exp(-0.5 * ((DEPTH - peak) / 0.12) ** 2) for roi, (_, peak) in PLANTED.items()}
    figure = plot_hierarchy(DEPTH, profiles, rows)
    ax = figure.axes[0]
    labelled = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert [line.get_label() for line in labelled] == [f"{roi} (level {level})" for roi, (level, _) in PLANTED.items()
                                                       if roi != "dmPFC"] + ["dmPFC (not in rank test)"]
    colors = [to_hex(line.get_color()) for line in labelled]
    assert len(set(colors)) == len(colors) == 8            # V1/A1 and LO/MT share a level, not a colour
    (untested,) = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert untested.get_label() == "dmPFC (not in rank test)"


def test_plot_keeps_many_rois_outside_the_rank_test_anonymous_and_grey():
    from matplotlib.colors import to_hex

    from encoding.hierarchy import plot_hierarchy
    from encoding.hierarchy._plot import MAX_NAMED_OTHERS

    names = [f"parcel_{i}" for i in range(MAX_NAMED_OTHERS + 1)]
    rows = [{"roi": name, "level": np.nan, "in_rank_test": False, "preferred_depth_weighted": np.nan,
             "weighted_ci_low": np.nan, "weighted_ci_high": np.nan} for name in names]
    figure = plot_hierarchy(DEPTH, {name: DEPTH * 0 for name in names}, rows)
    lines = [line for line in figure.axes[0].get_lines() if line.get_linestyle() == "--"]
    assert len(lines) == len(names) and {to_hex(line.get_color()) for line in lines} == {to_hex("0.75")}
    assert figure.axes[0].get_legend() is None
