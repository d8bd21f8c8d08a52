"""Simulated studies for the ridge benchmarks, by name: a whole-brain mix of voxels, and the planted layer
the benchmarks used before issue 31.

- ``whole-brain`` (the default since issue 31): stimulus latents with a power-law spectrum (latent k's
  variance falls as k^-decay) and autocorrelation of their own; a layer's features are a mix of them plus
  private noise, delayed 1..5 TRs within runs and z-scored per run. Most targets are noise alone
  (``noise_fraction``); the others carry an HRF-weighted response to the latents at a signal share of
  variance spread log-uniformly over 0.002..0.5. Every target's noise is AR(1) (coefficient 0.3..0.7), and
  targets are z-scored per run, as ``encoding.run`` does. Noise and signal targets are interleaved, so any
  first columns are a sample of the mix. On real data most voxels choose the largest alpha; so do these.
- ``planted-layer`` (``ridge_sweep.simulate``): every target driven by 160 features of one layer at
  noise levels spread over 0.5..8: every target carries signal, and the chosen alphas fall in a narrow band.

Both return ``(Y_train, Y_test, runs, train, test, layer_design)``: float32 targets of the training runs
and the test run, each training row's run, the slices of the training and test rows, and
``layer_design(layer)``, the (n_total, p) float32 design of a layer.
"""
import numpy as np

from ridge_sweep import N_DELAYS, simulate as planted_layer
from features.delays import delay_run

#: HRF-like weights of the response over delays 1..5 TRs (a peak at 3, an undershoot-free tail).
_HRF = np.array([0.3, 0.8, 1.0, 0.6, 0.25])


def whole_brain(n, p, n_targets, n_runs, n_layers, seed, noise_fraction=0.55, rank=256, decay=1.0,
                private=0.1, signal_share=(0.01, 0.9)):
    """A whole-brain mix of targets on a design with a decaying spectrum; see the module docstring.

    Parameters
    ----------
    n : int, training TRs (``n_runs`` runs of n // n_runs; one more run of that length is the test run)
    p : int, delayed features (p // 5 hidden units)
    n_targets : int
    n_runs : int
    n_layers : int, layers ``layer_design`` can give (each its own mix of the latents)
    seed : int
    noise_fraction : float, share of targets with no signal
    rank : int, stimulus latents
    decay : float, latent k's variance is proportional to k^-decay
    private : float, variance of each feature's private noise relative to its share of the latents
    """
    rng = np.random.default_rng([seed, 31])
    n_per_run, hidden = n // n_runs, p // N_DELAYS
    n_total = n_per_run * (n_runs + 1)
    latents = stimulus_latents(rng, n_total, rank, decay)
    Y = np.empty((n_total, n_targets), dtype=np.float32)
    for start in range(0, n_targets, 5000):   # in column chunks: no full-size float64 temporaries
        cols = slice(start, min(start + 5000, n_targets))
        Y[:, cols] = brain_targets(rng, latents, n_per_run, cols.stop - cols.start, noise_fraction, signal_share)
    runs = np.repeat(np.arange(n_runs), n_per_run)
    train, test = slice(0, n_per_run * n_runs), slice(n_per_run * n_runs, n_total)
    layer_design = lambda layer: layer_features(latents, layer, hidden, n_per_run, seed, private)  # noqa: E731
    return Y[train], Y[test], runs, train, test, layer_design


def stimulus_latents(rng, n_total, rank, decay):
    """(n_total, rank) latents: AR(1) with coefficients 0.5..0.95 (slow and fast ones), variances k^-decay."""
    latents = rng.standard_normal((n_total, rank))
    coefficients = rng.uniform(0.5, 0.95, rank)
    for t in range(1, n_total):
        latents[t] += coefficients * latents[t - 1]
    latents /= latents.std(0)
    return latents * np.arange(1, rank + 1) ** (-decay / 2)


def layer_features(latents, layer, hidden, n_per_run, seed, private=0.1):
    """A layer's (n_total, 5 hidden) float32 design: a mix of the latents plus private noise, delayed within
    runs and z-scored per run."""
    rng = np.random.default_rng([seed, 31, layer])
    shared = latents @ rng.standard_normal((latents.shape[1], hidden))
    shared /= np.sqrt((latents ** 2).mean(0).sum())
    features = (shared + np.sqrt(private) * rng.standard_normal(shared.shape)).astype(np.float32)
    runs = [delay_run(features[i:i + n_per_run]) for i in range(0, len(features), n_per_run)]
    return np.concatenate([(r - r.mean(0)) / (r.std(0) + 1e-6) for r in runs]).astype(np.float32)


def brain_targets(rng, latents, n_per_run, n_targets, noise_fraction, signal_share, weights=None):
    """(n_total, n_targets) float32: noise targets and signal targets interleaved, AR(1) noise, z-scored per run.

    ``weights`` (rank, n_targets): each target's response to each latent (default: standard normal).
    """
    n_total, rank = latents.shape
    response = np.zeros((n_total, rank))   # the latents through the HRF, within runs
    for start in range(0, n_total, n_per_run):
        run = latents[start:start + n_per_run]
        for delay, weight in enumerate(_HRF, 1):
            response[start + delay:start + n_per_run] += weight * run[:n_per_run - delay]
    signal = response @ (rng.standard_normal((rank, n_targets)) if weights is None else weights)
    signal /= signal.std(0)
    share = np.exp(rng.uniform(*np.log(signal_share), n_targets))
    share[rng.random(n_targets) < noise_fraction] = 0
    noise = rng.standard_normal((n_total, n_targets))
    coefficient = rng.uniform(0.3, 0.7, n_targets)
    for t in range(1, n_total):
        noise[t] += coefficient * noise[t - 1]
    noise /= noise.std(0)
    Y = np.sqrt(share) * signal + np.sqrt(1 - share) * noise
    for start in range(0, n_total, n_per_run):
        run = Y[start:start + n_per_run]
        run -= run.mean(0)
        run /= run.std(0)
    return Y.astype(np.float32)


def two_bands(n, p, n_targets, n_runs, seed, noise_fraction=0.55, rank=256, decay=1.0, private=0.1,
              signal_share=(0.01, 0.9)):
    """Two feature spaces on partly shared latents and a whole-brain mix of targets preferring either.

    Each latent belongs to band A with a weight u (uniform over 0..1) and to band B with 1 - u; band A's
    features mix the latents scaled by u, band B's by 1 - u (as ``layer_features``). A signal target's
    response to latent k is weighted by its preference q (uniform over 0..1) as q u_k + (1 - q)(1 - u_k),
    so the best band weights differ across targets; noise targets and signal shares as ``whole_brain``.

    Returns
    -------
    Xs_train, Y_train, runs, Xs_test, Y_test : as ``bench/banded.py``'s ``simulate``
    """
    rng = np.random.default_rng([seed, 31, 2])
    n_per_run, hidden = n // n_runs, p // N_DELAYS
    n_total = n_per_run * (n_runs + 1)
    latents = stimulus_latents(rng, n_total, rank, decay)
    membership = rng.uniform(0, 1, rank)
    bands = [layer_features(latents * share, band, hidden, n_per_run, seed, private)
             for band, share in enumerate((membership, 1 - membership))]
    Y = np.empty((n_total, n_targets), dtype=np.float32)
    for start in range(0, n_targets, 5000):
        cols = slice(start, min(start + 5000, n_targets))
        preference = rng.uniform(0, 1, cols.stop - cols.start)
        weights = rng.standard_normal((rank, len(preference))) * (
            preference * membership[:, None] + (1 - preference) * (1 - membership[:, None]))
        Y[:, cols] = brain_targets(rng, latents, n_per_run, len(preference), noise_fraction, signal_share, weights)
    train, test = slice(0, n_per_run * n_runs), slice(n_per_run * n_runs, n_total)
    runs = np.repeat(np.arange(n_runs), n_per_run)
    return [b[train] for b in bands], Y[train], runs, [b[test] for b in bands], Y[test]


SIMULATIONS = {"whole-brain": whole_brain, "planted-layer": planted_layer}


def alpha_histogram(index, alphas):
    """Targets per alpha of the grid, as one line: ``1e-02:0 ... 1e+06:2,013`` (share at the largest)."""
    counts = np.bincount(np.asarray(index), minlength=len(alphas))
    cells = " ".join(f"{alpha:.0e}:{count:,}" for alpha, count in zip(alphas, counts))
    return (f"{cells}  ({np.count_nonzero(counts)} distinct, {counts[-1] / counts.sum():.0%} at the largest, "
            f"{counts[0] / counts.sum():.0%} at the smallest)")
