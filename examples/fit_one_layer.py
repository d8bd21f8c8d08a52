# %% [markdown]
# # Fit one layer in a notebook
#
# Load one subject's runs, fit one layer of one model with the run-wise ridge estimator, predict the
# held-out run, and draw one map in the subject's own space. Run it as a script
# (`python examples/fit_one_layer.py --out examples-out`) or cell by cell (`# %%`) in VS Code or Jupyter.
#
# Without `--config`, it writes the toy study of `encoding.demo.toy_study` first: simulated 12 mm MNI
# volumes whose five ROIs are driven by the five layers of a small features store (layer k drives ROI k),
# so the map below should light up the ROI of the layer fitted. Nothing in it is a finding about brains.

# %%
import argparse
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")   # files, never windows

import numpy as np  # noqa: E402
from nilearn import plotting  # noqa: E402

from encoding.api import RunwiseRidgeCV, load_config, load_run, save_map  # noqa: E402
from encoding.config import expand_path  # noqa: E402
from features.store import FeatureStore  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--config", help="an encoding.run config (default: write the toy study)")
parser.add_argument("--subject", default="sub-01")
parser.add_argument("--model", default=None, help="default: the config's first model")
parser.add_argument("--instruction", default="caption")
parser.add_argument("--layer", type=int, default=2)
parser.add_argument("--out", default="examples-out", help="folder for the map and its picture")
args = parser.parse_args(sys.argv[1:] if "ipykernel" not in sys.modules else [])

# %% The study: a config says where the runs and the features are
if args.config is None:
    from encoding.demo.toy_study import write_toy_study

    args.config = write_toy_study(Path(tempfile.mkdtemp(prefix="toy-study-")))
config = load_config(args.config)
base = Path(config["config_file"]).parent
model_name = args.model or config["models"][0]
runs = config["subjects"][args.subject]["runs"]
test_runs = set(config["test_runs"])

# %% Load the runs: each an array (n_TR, n_targets) and the space it came in
Y_runs, spaces = [], []
for run in runs:
    entry = {k: (str(expand_path(v, config, base, subject=args.subject)) if k in ("path", "mask", "left", "right")
                 else v) for k, v in run.items()}
    responses, space = load_run(entry, base)
    Y_runs.append(responses)
    spaces.append(space)
stimuli = [run["stimulus_run"] for run in runs]
print(f"{len(Y_runs)} runs of {spaces[0].describe()}")

# %% The features of one layer, per run (the store's rows are the runs' TRs)
store = FeatureStore(expand_path(config["features_dir"], config, base) / f"{model_name}.h5")
X_runs = [store.read_layer(args.instruction, stimulus, args.layer)[:len(y)] for stimulus, y in zip(stimuli, Y_runs)]
store.close()

# %% Fit on the training runs, folds grouped by stimulus; predict the held-out run
train = [i for i, s in enumerate(stimuli) if s not in test_runs]
test = [i for i, s in enumerate(stimuli) if s in test_runs][:1]        # its first viewing
model = RunwiseRidgeCV(alphas=config["alphas"], delays=config["delays"])
model.fit([X_runs[i] for i in train], [Y_runs[i] for i in train], groups=[stimuli[i] for i in train])
prediction = model.predict([X_runs[i] for i in test])
r = model.score([X_runs[i] for i in test], [Y_runs[i] for i in test], metric="r")
print(f"layer {args.layer}: held-out prediction {prediction.shape}, median test r {np.nanmedian(r):.3f}, "
      f"weights {model.get_primal_coef().shape} ({model.solver_} form)")

# %% One map in the subject's own space, drawn with nilearn
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
path = save_map(r, spaces[0], out / f"{args.subject}_model-{model_name}_layer-{args.layer}_stat-r")
if spaces[0].kind == "volume":
    plotting.plot_stat_map(str(path), title=f"test r, layer {args.layer}", output_file=str(out / "test_r.png"))
print(f"wrote {path} and {out / 'test_r.png'}")
