"""The field's reference recipe, written independently of the engine, and a study shaped like a real one.

Reference (the Gallant lab's voxelwise_tutorials): each run's features z-scored on their own
(scikit-learn's StandardScaler), FIR delays within the run (rows from before the run are zeros, i.e.
the run mean), responses detrended and z-scored per run, himalaya's RidgeCV or KernelRidgeCV with one
alpha per target, cross-validated leave-one-stimulus-out (scikit-learn's LeaveOneGroupOut; a movie
watched twice stays in one fold), scored by Pearson r on the held-out runs.

The study: hidden states with large offsets (several units many SDs from 0, as in language models),
a training movie watched twice, a short test run, targets with spread noise levels. Used by
tests/test_reference_pipeline.py and bench/reference_pipeline.py.
"""
from dataclasses import dataclass

import numpy as np
import yaml
from himalaya.kernel_ridge import KernelRidgeCV
from himalaya.ridge import RidgeCV
from himalaya.scoring import r2_score
from scipy.signal import detrend
from scipy.stats import pearsonr
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.preprocessing import StandardScaler

PROMPT = "Caption the video in a short sentence."


@dataclass
class Study:
    config: object          # Path of the YAML config
    features: dict          # stimulus -> (n_TR, hidden) raw features of the fitted layer
    bold: list              # raw responses (n_TR, n_targets) per fMRI run, in config order
    stimuli: list           # stimulus of each fMRI run
    test: str               # the test stimulus
    delays: list
    alphas: np.ndarray


def write_study(folder, hidden=16, n_targets=300, train_trs=(120, 110, 130, 100), test_trs=50, offset=3.0,
                repeat="stim-1", n_big=None, seed=0, delays=(1, 2, 3, 4), alphas=(-2, 5, 15), two_layers=False):
    """Write a features store, one NPY file per fMRI run and a config; return the Study.

    The store has two layers. Layer 1 drives the responses; layer 0 is half of it, unless
    ``two_layers``: then layer 0 holds features of its own, drives every other target, and both layers
    are fitted.

    Parameters
    ----------
    offset : float
        Every unit is shifted by ``offset`` of its SD, and ``n_big`` units (default hidden // 4) by
        ten times that: the zero rows a raw delay shifts in are then far from the data.
    repeat : str or None
        A training stimulus whose movie is watched a second time (its own fMRI run, new noise).
    """
    from features.store import FeatureStore

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    stimuli = [f"stim-{i + 1}" for i in range(len(train_trs))] + ["test"]
    lengths = dict(zip(stimuli, list(train_trs) + [test_trs]))
    n_big = hidden // 4 if n_big is None else n_big
    shift = offset * np.ones(hidden)
    shift[:n_big] *= 10
    def hidden_states(n):
        latent = rng.standard_normal((n + 8, hidden))
        smooth = (latent[8:] + latent[7:-1] + latent[6:-2]) / np.sqrt(3)      # some autocorrelation
        scale = rng.uniform(0.5, 3.0, hidden)
        return (smooth * scale + shift * scale).astype(np.float32)

    features = {stimulus: hidden_states(lengths[stimulus]) for stimulus in stimuli}
    layer_0 = {s: hidden_states(lengths[s]) if two_layers else features[s] * 0.5 for s in stimuli}
    with FeatureStore(folder / "features" / "offset.h5", "a", {"model_id": "offset", "tr": 1.49}) as store:
        for stimulus in stimuli:
            store.create_run("caption", stimulus, lengths[stimulus], [hidden, hidden], PROMPT)
            store.write_clips("caption", stimulus, slice(None), [layer_0[stimulus], features[stimulus]])
    weights = rng.standard_normal((hidden * len(delays), n_targets)) / np.sqrt(hidden * len(delays))
    noise = np.geomspace(0.3, 6.0, n_targets)
    runs_stimuli = stimuli[:-1] + ([repeat] if repeat else []) + ["test"]
    bold, runs = [], []
    for i, stimulus in enumerate(runs_stimuli):
        signal = delay(standardize(features[stimulus]), delays) @ weights
        if two_layers:
            signal[:, ::2] = (delay(standardize(layer_0[stimulus]), delays) @ weights)[:, ::2]
        drift = np.linspace(0, 1, lengths[stimulus])[:, None] * rng.standard_normal(n_targets)
        y = 100 + signal + noise * rng.standard_normal(signal.shape) + 5 * drift
        bold.append(y.astype(np.float32))
        np.save(folder / f"sub-01_run-{i + 1}.npy", bold[-1])
        runs.append({"path": f"sub-01_run-{i + 1}.npy", "stimulus_run": stimulus, "tr": 1.49})
    config = {"name": "offsets", "features_dir": "features", "models": ["offset"], "instructions": "caption",
              "layers": [0, 1] if two_layers else [1], "subjects": {"sub-01": {"runs": runs}}, "test_runs": ["test"], "delays": list(delays),
              "alphas": {"logspace": list(alphas)}, "trim": {"start": 0, "end": 0}, "rois": {"atlas": "parcels"},
              "flatmap": False, "n_permutations": 0}
    (folder / "study.yaml").write_text(yaml.safe_dump(config))
    return Study(folder / "study.yaml", features, bold, runs_stimuli, "test", list(delays),
                 np.logspace(*alphas[:2], int(alphas[2])))


def standardize(x):
    """One run's features z-scored column by column (scikit-learn's StandardScaler)."""
    return StandardScaler().fit_transform(np.asarray(x, dtype=np.float64))


def delay(x, delays):
    """FIR delays within one run: block d is x shifted down by d rows, zeros padded on top."""
    return np.hstack([np.vstack([np.zeros((d, x.shape[1])), x[:len(x) - d]]) for d in delays])


def clean(y):
    """One run's responses, linearly detrended and z-scored in time."""
    y = detrend(np.asarray(y, dtype=np.float64), axis=0)
    return (y - y.mean(0)) / y.std(0)


def reference_fit(study, design="reference", kernel=False):
    """Test r and alphas per target from the reference recipe on the study's raw arrays.

    ``design="raw-delay"`` delays the raw features and z-scores the delayed design (the recipe the
    engine used before), to show that the study's offsets tell the two apart.
    """
    X, Y, groups = [], [], []
    for stimulus, bold in zip(study.stimuli, study.bold):
        raw = study.features[stimulus].astype(np.float64)
        if design == "reference":
            X.append(delay(standardize(raw), study.delays))
        else:
            X.append(standardize(delay(raw, study.delays)))
        Y.append(clean(bold))
        groups.append([stimulus] * len(bold))
    train = [i for i, s in enumerate(study.stimuli) if s != study.test]
    test = [i for i, s in enumerate(study.stimuli) if s == study.test]
    X_train = np.concatenate([X[i] for i in train]).astype(np.float32)
    Y_train = np.concatenate([Y[i] for i in train]).astype(np.float32)
    g = np.concatenate([groups[i] for i in train])
    cv = list(LeaveOneGroupOut().split(X_train, groups=g))
    params = dict(score_func=r2_score)
    model = (KernelRidgeCV(alphas=study.alphas, kernel="linear", cv=cv, solver_params=params) if kernel else
             RidgeCV(alphas=study.alphas, cv=cv, solver_params=params))
    model.fit(X_train, Y_train)
    X_test = np.concatenate([X[i] for i in test]).astype(np.float32)
    Y_test = np.concatenate([Y[i] for i in test])
    prediction = np.asarray(model.predict(X_test), dtype=np.float64)
    r = np.array([pearsonr(prediction[:, j], Y_test[:, j])[0] for j in range(Y_test.shape[1])])
    return r, np.asarray(model.best_alphas_)


def reference_segment_fit(features, bold, bounds, test, delays, alphas):
    """Test r and alphas of one long run cut into segments, by the recipe written out independently.

    The run's features are z-scored (StandardScaler) on the TRs outside the test segment and the
    ``max |delay|`` TRs on each side of it, then delayed over the whole run; the training segments lose
    those gap TRs; each segment's responses are detrended and z-scored on their own; alphas are chosen by
    himalaya's KernelRidgeCV, leave-one-segment-out (LeaveOneGroupOut) scored by R^2, and the test segment
    is scored by Pearson r.

    Parameters
    ----------
    features : array (n_TR, n_features), raw
    bold : array (n_TR, n_targets), raw
    bounds : list of (start, stop) of the segments, in TRs of the run
    test : int, index of the test segment in ``bounds``
    """
    n = len(features)
    gap = max(abs(d) for d in delays)
    start, stop = bounds[test]
    blocked = np.zeros(n, bool)
    blocked[max(start - gap, 0):stop + gap] = True
    scaler = StandardScaler().fit(np.asarray(features, np.float64)[~blocked])
    X_run = delay(scaler.transform(np.asarray(features, np.float64)), delays)
    X_train, Y_train, groups = [], [], []
    for k, (a, b) in enumerate(bounds):
        if k == test:
            continue
        keep = np.arange(a, b)[~blocked[a:b]]
        X_train.append(X_run[keep])
        Y_train.append(clean(bold[keep]))
        groups += [k] * len(keep)
    X_train = np.concatenate(X_train).astype(np.float32)
    Y_train = np.concatenate(Y_train).astype(np.float32)
    cv = list(LeaveOneGroupOut().split(X_train, groups=np.asarray(groups)))
    model = KernelRidgeCV(alphas=alphas, kernel="linear", cv=cv, solver_params=dict(score_func=r2_score))
    model.fit(X_train, Y_train)
    prediction = np.asarray(model.predict(X_run[start:stop].astype(np.float32)), dtype=np.float64)
    Y_test = clean(bold[start:stop])
    r = np.array([pearsonr(prediction[:, j], Y_test[:, j])[0] for j in range(Y_test.shape[1])])
    return r, np.asarray(model.best_alphas_)
