"""Figures of a word-by-word study: r over time per sensor group, a topography per window (MNE's
``plot_topomap``), and the difference between two models with its significant clusters."""
import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

log = logging.getLogger(__name__)

# one channel type per topography: MNE interpolates a single sensor kind on the head outline
_TOPO_TYPES = ("mag", "eeg", "grad", "planar1", "seeg")


def _centres(windows):
    return np.array([(a + b) / 2 for a, b in windows])


def plot_r_over_time(r, q, windows, groups, title=None, fdr_q=0.05, output_file=None):
    """Mean held-out r over each sensor group's sensors, per window; dots mark windows with a sensor of
    the group significant at q < fdr_q.

    Parameters
    ----------
    r, q : arrays of shape (n_sensors, n_windows)
    windows : list of (start, stop) seconds
    groups : dict of name -> sensor indices

    Returns
    -------
    matplotlib.figure.Figure
    """
    times = _centres(windows) * 1000
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, index in groups.items():
        line, = ax.plot(times, np.nanmean(r[index], 0), label=f"{name} ({len(index)})", lw=2 if name == "all" else 1)
        significant = (q[index] < fdr_q).any(0)
        ax.plot(times[significant], np.nanmean(r[index], 0)[significant], "o", color=line.get_color(), ms=4)
    ax.axhline(0, color="gray", lw=0.5)
    ax.set_xlabel("time after word onset (ms, window centre)")
    ax.set_ylabel("held-out r (mean over sensors)")
    ax.legend(fontsize=7, frameon=False)
    ax.set_title((title + "\n" if title else "") + f"dots: a sensor of the group at q < {fdr_q}", fontsize=9)
    fig.tight_layout()
    if output_file:
        fig.savefig(output_file, dpi=120)
    return fig


def plot_topographies(r, q, windows, info, title=None, fdr_q=0.05, output_file=None):
    """Held-out r on the head, one panel per window, significant sensors marked (MNE's plot_topomap).

    Returns
    -------
    matplotlib.figure.Figure, or None when the channels have no positions (nothing is drawn).
    """
    import mne

    types = np.array(info.get_channel_types())
    kind = next((t for t in _TOPO_TYPES if t in types), None)
    if kind is None:
        return None
    picks = np.flatnonzero(types == kind)
    sub_info = mne.pick_info(info, picks)
    n = len(windows)
    columns = min(n, 5)
    rows = int(np.ceil(n / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.1 * rows + 0.6), squeeze=False)
    limit = float(np.nanmax(np.abs(r[picks]))) or 1.0
    try:
        for w, ax in enumerate(axes.ravel()):
            if w >= n:
                ax.axis("off")
                continue
            image, _ = mne.viz.plot_topomap(r[picks, w], sub_info, axes=ax, show=False, cmap="RdBu_r",
                                            vlim=(-limit, limit), mask=q[picks, w] < fdr_q, contours=0, res=40,
                                            mask_params=dict(markersize=4, markerfacecolor="k"))
            ax.set_title(f"{windows[w][0] * 1000:.0f}-{windows[w][1] * 1000:.0f} ms", fontsize=8)
    except (RuntimeError, ValueError) as err:   # no sensor positions in the info
        plt.close(fig)
        log.warning("no topographies: the %s channels have no positions (%s)", kind, str(err).splitlines()[0])
        return None
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="held-out r")
    fig.suptitle((title + ": " if title else "") + f"{kind} sensors, dots q < {fdr_q}", fontsize=9)
    if output_file:
        fig.savefig(output_file, dpi=120)
    return fig


def plot_model_difference(r_a, r_b, windows, names, clusters=(), title=None, output_file=None):
    """Mean r of two models over time and their difference, with significant clusters shaded.

    Parameters
    ----------
    r_a, r_b : arrays of shape (n_windows,)
    names : (name_a, name_b)
    clusters : list of (boolean mask over windows, p-value)

    Returns
    -------
    matplotlib.figure.Figure
    """
    times = _centres(windows) * 1000
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.5, 5), sharex=True)
    top.plot(times, r_a, label=names[0])
    top.plot(times, r_b, label=names[1])
    top.set_ylabel("held-out r")
    top.legend(fontsize=8, frameon=False)
    bottom.plot(times, np.asarray(r_a) - np.asarray(r_b), color="k")
    bottom.axhline(0, color="gray", lw=0.5)
    step = np.median(np.diff(times)) if len(times) > 1 else 1.0
    for mask, p in clusters:
        index = np.flatnonzero(mask)
        if index.size:
            bottom.axvspan(times[index[0]] - step / 2, times[index[-1]] + step / 2, color="C2", alpha=0.3)
            bottom.text(times[index].mean(), bottom.get_ylim()[1], f"p={p:.3g}", ha="center", va="top", fontsize=7)
    bottom.set_ylabel(f"r({names[0]}) - r({names[1]})")
    bottom.set_xlabel("time after word onset (ms, window centre)")
    top.set_title((title + "\n" if title else "") + "shaded: clusters at p < 0.05 (MNE cluster permutation)",
                  fontsize=9)
    fig.tight_layout()
    if output_file:
        fig.savefig(output_file, dpi=120)
    return fig
