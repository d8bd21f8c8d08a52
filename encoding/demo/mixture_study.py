"""A planted study of layer mixtures, for the layer-weights analysis (``encoding.layer_weights``): seconds to fit.

A features store of ``n_layers`` layers built as a model's hidden states are, each layer the one before it
plus new features (adjacent layers correlate by ``rho`` unit by unit), and one subject whose targets come in
groups (ROIs): each group driven by one layer, or by an equal mixture of two (each layer exactly half of each
target's signal variance over the runs), plus noise. The argmax of the layer sweep gives a mixture target one
of its layers; the layer weights should give it both. Everything is simulated; nothing here is a finding about brains.
"""
from pathlib import Path

import numpy as np
import yaml

from features.delays import delay_run, zscore_run
from features.store import FeatureStore
from instructions import resolve

#: ROI -> the layers driving it, with their share of the signal variance.
PLANTED = {"layer1": {1: 1.0}, "layer4": {4: 1.0}, "mixture1+4": {1: 0.5, 4: 0.5}}
N_LAYERS, HIDDEN, N_RUNS, N_TRS, TR = 6, 8, 5, 80, 2.0
DELAYS = [1, 2]


def hidden_states(rng, n_trs, n_layers=N_LAYERS, hidden=HIDDEN, rho=0.5):
    """One run's layers, (n_layers, n_trs, hidden): layer k = sqrt(rho) layer k-1 + sqrt(1 - rho) new features."""
    layers = [rng.standard_normal((n_trs, hidden))]
    for _ in range(1, n_layers):
        layers.append(np.sqrt(rho) * layers[-1] + np.sqrt(1 - rho) * rng.standard_normal((n_trs, hidden)))
    return np.stack(layers).astype(np.float32)


def simulate(seed=0, planted=PLANTED, n_layers=N_LAYERS, hidden=HIDDEN, n_runs=N_RUNS, n_trs=N_TRS,
             targets_per_roi=30, delays=DELAYS, noise=1.0, rho=0.5):
    """Hidden states per run and responses with the planted layers.

    Returns
    -------
    layers : list per run of arrays (n_layers, n_trs, hidden)
    responses : list per run of arrays (n_trs, n_targets), float32
    rois : dict ROI -> target indices
    """
    rng = np.random.default_rng(seed)
    layers = [hidden_states(rng, n_trs, n_layers, hidden, rho) for _ in range(n_runs)]
    designs = [[delay_run(zscore_run(layer), delays) for layer in run] for run in layers]
    width = hidden * len(delays)
    rois = {roi: np.arange(i * targets_per_roi, (i + 1) * targets_per_roi) for i, roi in enumerate(planted)}
    signal = [np.zeros((n_trs, targets_per_roi * len(planted))) for _ in layers]
    for roi, mix in planted.items():
        for k, share in mix.items():
            weights = rng.standard_normal((width, targets_per_roi))
            readout = [design[k] @ weights for design in designs]
            scale = np.sqrt(share) / np.concatenate(readout).std(0)   # each layer exactly its share, per target
            for run, part in zip(signal, readout):
                run[:, rois[roi]] += part * scale
    responses = [(run + noise * rng.standard_normal(run.shape)).astype(np.float32) for run in signal]
    return layers, responses, rois


def write_mixture_study(folder, seed=0, **kwargs):
    """The study as files: a features store ``chain`` (instruction ``caption``), one NPY file per run, a YAML of
    ROIs and a config fitting every layer with the layer weights on (the last run held out). Returns the config
    path; ``kwargs`` go to :func:`simulate`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    layers, responses, rois = simulate(seed, **kwargs)
    prompt = resolve(["caption"])["caption"]
    n_layers, n_trs, hidden = layers[0].shape
    with FeatureStore(folder / "features" / "chain.h5", "a", {"model_id": "chain", "tr": TR}) as store:
        for run, values in enumerate(layers):
            store.create_run("caption", f"run-{run + 1}", n_trs, [hidden] * n_layers, prompt)
            store.write_clips("caption", f"run-{run + 1}", slice(None), list(values))
    runs = []
    for run, bold in enumerate(responses):
        np.save(folder / f"sub-01_run-{run + 1}.npy", bold + 100)
        runs.append({"path": f"sub-01_run-{run + 1}.npy", "stimulus_run": f"run-{run + 1}", "tr": TR})
    (folder / "rois.yaml").write_text(yaml.safe_dump({roi: index.tolist() for roi, index in rois.items()}))
    config = {"name": "mixtures", "features_dir": "features", "models": ["chain"], "instructions": "caption",
              "subjects": {"sub-01": {"runs": runs}}, "test_runs": [f"run-{len(layers)}"],
              "delays": kwargs.get("delays", DELAYS), "alphas": {"logspace": [-1, 4, 11]},
              # each ROI's level: its planted layers' share-weighted mean, so the rank test has a truth to find
              "rois": {"atlas": "rois.yaml", "levels": {roi: float(sum(k * share for k, share in mix.items()))
                                                        for roi, mix in kwargs.get("planted", PLANTED).items()}},
              "layer_weights": True, "flatmap": False, "n_permutations": 0,
              "n_bootstrap": 100}
    path = folder / "mixtures.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
