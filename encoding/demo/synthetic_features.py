"""Clearly synthetic feature "models" for the embedded demo, computed from the decoded movie.

These are NOT multimodal language models. Each is a fixed random network (seeded) on top of simple
picture or sound statistics of each TR clip, whose deeper layers integrate over longer stretches of
the run (longer temporal receptive windows, as in cortical hierarchies). They give the demo a
features store with the real layout, built from the real decoded clips, with layers that differ
from each other in a known way, so that the simulated subject's planted preferred layers can be
recovered. The store's attributes say ``synthetic: true``.
"""
import numpy as np

SYNTHETIC_NOTE = ("synthetic demo features: a fixed random network over picture/sound statistics of "
                  "each clip, not a multimodal language model")
# Time constant (in TRs) of the leaky integration feeding each layer: depth lengthens the window.
TIME_CONSTANTS = (0.0, 0.0, 0.5, 1.0, 2.0, 3.0, 4.5, 6.0)


def picture_statistics(frames, grid=4):
    """Mean colour and motion energy per cell of a grid x grid tiling of the clip.

    Parameters
    ----------
    frames : uint8 array of shape (n_frames, height, width, 3)

    Returns
    -------
    stats : float array of shape (grid * grid * 4,): 3 colour means and 1 motion energy per cell.
    """
    frames = frames.astype(np.float32) / 255.0
    n, height, width, _ = frames.shape
    cells = frames[:, :height - height % grid, :width - width % grid]
    cells = cells.reshape(n, grid, height // grid, grid, width // grid, 3)
    colour = cells.mean(axis=(0, 2, 4)).reshape(-1)
    motion = np.abs(np.diff(cells, axis=0)).mean(axis=(0, 2, 4, 5)).reshape(-1) if n > 1 \
        else np.zeros(grid * grid, np.float32)
    return np.concatenate([colour, motion])


def sound_statistics(audio, sample_rate=16000, n_bands=16):
    """Log energy in n_bands log-spaced frequency bands (100 Hz to 7 kHz) of a mono clip."""
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(audio.size, 1.0 / sample_rate)
    edges = np.geomspace(100, 7000, n_bands + 1)
    band = np.digitize(freqs, edges) - 1
    energy = np.array([spectrum[band == b].sum() for b in range(n_bands)])
    return np.log(energy / max(audio.size, 1) + 1e-8).astype(np.float32)


def random_hierarchy(inputs_per_run, n_layers, hidden, seed, gain=1.5):
    """Layer activations of a fixed random network, run by run.

    Layer 0 is the standardized input projected to ``hidden`` units; layer k > 0 is
    ``tanh(gain * W_k @ leaky(layer_{k-1}))`` where the leaky integration has time constant
    TIME_CONSTANTS[k] TRs and restarts at each run (the "model" sees each run on its own).

    Parameters
    ----------
    inputs_per_run : list of arrays of shape (n_TR_run, n_inputs)

    Returns
    -------
    layers_per_run : list of arrays of shape (n_layers, n_TR_run, hidden)
    """
    rng = np.random.default_rng(seed)
    stacked = np.concatenate(inputs_per_run)
    mean, std = stacked.mean(0), stacked.std(0) + 1e-6
    projection = rng.standard_normal((stacked.shape[1], hidden)) / np.sqrt(stacked.shape[1])
    weights = [rng.standard_normal((hidden, hidden)) / np.sqrt(hidden) for _ in range(n_layers)]
    out = []
    for inputs in inputs_per_run:
        layer = ((inputs - mean) / std) @ projection
        layers = [layer]
        for k in range(1, n_layers):
            tau = TIME_CONSTANTS[min(k, len(TIME_CONSTANTS) - 1)]
            layer = np.tanh(gain * _leaky(layer, tau) @ weights[k])
            layers.append(layer)
        out.append(np.stack(layers).astype(np.float32))
    return out


def _leaky(x, tau):
    """Causal leaky integration along rows with time constant tau (rows); tau = 0 is identity."""
    if tau <= 0:
        return x
    keep = np.exp(-1.0 / tau)
    out = np.empty_like(x)
    state = np.zeros(x.shape[1])
    for t, row in enumerate(x):
        state = keep * state + (1 - keep) * row
        out[t] = state
    # Rescale so every layer's input has the variance of an un-integrated one.
    return out / (out.std(0, keepdims=True) + 1e-6) * (x.std(0, keepdims=True) + 1e-6)
