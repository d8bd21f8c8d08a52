"""A simulated subject on fsLR-32k cortex whose Glasser ROI groups are driven by planted layers.

Responses are simulated, not recorded: each ROI's vertices are a noisy linear read-out of one
planted layer of one synthetic model, passed through a canonical hemodynamic response, plus
autocorrelated noise and a slow drift. Vertices outside the planted ROIs are noise only.
"""
import numpy as np
from scipy.stats import gamma

# ROI group -> (model, layer) that drives it. Early visual by an early layer, higher visual by a
# middle one, auditory by the sound model, language areas by the last (slowest) layer.
PLANTED_LAYERS = {
    "EVC": ("synthetic-vision", 1),
    "LOC": ("synthetic-vision", 4),
    "MT": ("synthetic-vision", 4),
    "AC": ("synthetic-audio", 1),
    "PTL": ("synthetic-vision", 7),
    "AG": ("synthetic-vision", 7),
    "IFG": ("synthetic-vision", 7),
}


def canonical_hrf(tr, length_s=30.0):
    """SPM-style double-gamma hemodynamic response sampled every TR, peak-normalised."""
    t = np.arange(0, length_s, tr)
    hrf = gamma.pdf(t, 6) - gamma.pdf(t, 16) / 6.0
    return hrf / hrf.max()


def simulate_runs(layers, rois, n_targets, tr, seed, snr=(0.3, 1.5), n_patterns=4,
                  planted=PLANTED_LAYERS, noise_ar=0.4, drift=0.5, repeats=()):
    """Simulated BOLD runs.

    Parameters
    ----------
    layers : dict model -> list over runs of arrays (n_layers, n_TR_run, hidden)
    rois : dict roi -> array of target indices
    n_targets : int
    tr : float
    seed : int
    snr : (low, high)
        Signal-to-noise variance ratio per vertex, drawn uniformly in this range.
    n_patterns : int
        Response patterns shared within an ROI (real ROIs respond coherently).
    repeats : sequence of int
        Runs (0-based) watched a second time: the same signal with new noise and drift, appended
        after the other runs (their noise is drawn last, so the other runs do not change).

    Returns
    -------
    runs : list of float32 arrays (n_TR_run, n_targets), the runs in order, then the repeats
    """
    rng = np.random.default_rng(seed)
    hrf = canonical_hrf(tr)
    n_runs = len(next(iter(layers.values())))
    lengths = [layers[next(iter(layers))][i].shape[1] for i in range(n_runs)]
    signal = [np.zeros((n, n_targets)) for n in lengths]
    for roi, (model, layer) in planted.items():
        if roi not in rois or model not in layers:
            continue
        index = rois[roi]
        hidden = layers[model][0].shape[2]
        patterns = rng.standard_normal((hidden, n_patterns))
        mixing = rng.standard_normal((n_patterns, index.size))
        for run in range(n_runs):
            x = layers[model][run][layer]
            x = (x - x.mean(0)) / (x.std(0) + 1e-6)
            response = np.apply_along_axis(lambda c: np.convolve(c, hrf)[:c.size], 0, x @ patterns)
            signal[run][:, index] = response @ mixing
    scale = np.concatenate(signal).std(0)
    target_snr = rng.uniform(*snr, size=n_targets)
    runs = []
    for n, sig in zip(lengths + [lengths[i] for i in repeats], signal + [signal[i] for i in repeats]):
        noise = _ar1_noise(rng, n, n_targets, noise_ar)
        trend = drift * np.linspace(-1, 1, n)[:, None] * rng.standard_normal(n_targets)
        with np.errstate(invalid="ignore", divide="ignore"):
            gain = np.where(scale > 0, np.sqrt(target_snr) / scale, 0.0)
        runs.append((sig * gain + noise + trend + 100.0).astype(np.float32))
    return runs


def _ar1_noise(rng, n, n_targets, rho):
    """Unit-variance AR(1) noise in time, independent across targets."""
    innovations = rng.standard_normal((n, n_targets)) * np.sqrt(1 - rho ** 2)
    noise = np.empty_like(innovations)
    noise[0] = rng.standard_normal(n_targets)
    for t in range(1, n):
        noise[t] = rho * noise[t - 1] + innovations[t]
    return noise
