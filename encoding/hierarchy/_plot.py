"""Line plot of per-ROI score profiles over normalized depth, one colour per ROI, listed by hierarchy level."""
import textwrap

import numpy as np
from matplotlib.figure import Figure

from ..plotting import distinct_colors

SCORE_LABELS = {"cv_score": "mean CV R² (training runs)", "test_r": "mean test r (held-out runs)"}
#: ROIs outside the rank test drawn in colours of their own, with their names, up to this many
MAX_NAMED_OTHERS = 12


def plot_hierarchy(depth, profiles, rows, title=None, score="cv_score", output_file=None):
    """One line per ROI; each ROI in the rank test its own colour, a dot at the weighted preferred depth.

    Two ROIs of one level are two findings, so they never share a colour; the legend lists the ROIs by
    level and names each one's level.

    Parameters
    ----------
    depth : array of shape (n_layers,)
    profiles : dict of str to array of shape (n_layers,)
        ROI -> mean score per layer.
    rows : list of dict
        The ROI rows of hierarchy.csv for this slice (level, in_rank_test, preferred depths, CIs).
    title : str, optional
    score : {"cv_score", "test_r"}
    output_file : str or Path, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = Figure(figsize=(8, 4.8))
    ax = fig.add_subplot()
    tested = sorted((row for row in rows if row["in_rank_test"]), key=lambda row: row["level"])
    others = [row for row in rows if not row["in_rank_test"]]
    # a few ROIs outside the test keep their names (Alice's six have no level); many stay anonymous grey
    named = len(others) <= MAX_NAMED_OTHERS
    colors = distinct_colors(len(tested) + (len(others) if named else 0))
    for row, color in zip(tested, colors):
        profile = profiles[row["roi"]]
        ax.plot(depth, profile, color=color, lw=1.6, label=f"{row['roi']} (level {row['level']:g})", zorder=2)
        weighted = row["preferred_depth_weighted"]
        if np.isfinite(weighted):
            height = np.interp(weighted, depth, profile)
            ax.errorbar([weighted], [height], xerr=[[weighted - row["weighted_ci_low"]],
                                                    [row["weighted_ci_high"] - weighted]],
                        fmt="o", color=color, ms=5, capsize=3, zorder=3)
    for row, color in zip(others, colors[len(tested):] if named else ["0.75"] * len(others)):
        ax.plot(depth, profiles[row["roi"]], color=color, lw=1.0 if named else 0.8, ls="--", zorder=1,
                label=f"{row['roi']} (not in rank test)" if named else None)
    ax.set_xlabel("normalized depth (0 = embedding output, 1 = last layer)")
    ax.set_ylabel(SCORE_LABELS.get(score, score))
    ax.set_xlim(-0.02, 1.02)
    ax.axhline(0, color="black", lw=0.5)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False,
                  title="ROI" if named else "ROI (dashed grey: not in rank test)", title_fontsize=7)
    if not tested:
        ax.text(0.5, 0.95, "no ROI in the rank test (none has a level and a significant best layer)",
                transform=ax.transAxes, ha="center", fontsize=8, color="0.4")
    if title:   # each line wrapped to the axes' width: a long test line ran off both edges of the figure
        ax.set_title("\n".join(textwrap.fill(line, 90) for line in title.split("\n")), fontsize=9)
    fig.tight_layout()
    if output_file:
        fig.savefig(output_file, dpi=120)
    return fig
