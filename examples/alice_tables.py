# %% [markdown]
# # What the Alice run found, in two tables
#
# After `python -m encoding.run --config configs/alice.yaml` (27 participants, the last fifth of the story
# held out), this prints:
#
# 1. per model and ROI, over participants: the held-out r at each participant's CV-best layer, its
#    one-sample t-test across participants (group_tests.csv), the cross-subject noise ceiling and the
#    normalized r; and what MiniLM adds beyond word rate (the unique R² of the banded fit's variance
#    partition);
# 2. with `--in-turn`, the 27 participants' mean time course predicted with every fifth of the story held
#    out in turn (`encoding.segments.predict_segments_in_turn`): r over all 362 volumes, and the r of each
#    held-out fifth, which shows how much a single held-out part depends on which part it is.
#
# `python examples/alice_tables.py --results results/alice [--in-turn]`

# %%
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from encoding.config import REPO_ROOT, load_config

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--results", default="results/alice", help="the output folder of configs/alice.yaml")
parser.add_argument("--in-turn", action="store_true", help="also predict the group mean with every segment held out")
args = parser.parse_args(sys.argv[1:] if "ipykernel" not in sys.modules else [])
results = Path(args.results)
pd.set_option("display.width", 160)

# %% 1. The participants' held-out r at their CV-best layer, and the ceiling
table = pd.read_csv(results / "alignment.csv")
best = table[table["best_layer_by_cv"]]
group = pd.read_csv(results / "group_tests.csv")
above = group[group["comparison"] == "above_zero"].assign(model=lambda g: g["a"].str.split(":").str[0])
summary = best.groupby(["model", "roi"], sort=False).agg(
    n=("subject", "nunique"), mean_r=("mean_test_r", "mean"), ceiling=("noise_ceiling", "mean"),
    normalized_r=("normalized_mean_test_r", "mean"), median_best_layer=("layer", "median")).reset_index()
summary = summary.merge(above[["model", "roi", "p_ttest", "q_ttest"]], on=["model", "roi"], how="left")
print("Held-out r (last fifth of the story) at each participant's CV-best layer, mean over participants;")
print("p, q: one-sample t-test of r > 0 across participants (BH over ROIs and models)\n")
print(summary.round(3).to_string(index=False))

# %% What the language model adds beyond word rate: unique R² of the banded fit
partition = pd.read_csv(results / "variance_partition.csv")
rows = []
for roi, part in partition.groupby("roi", sort=False):
    t, p = stats.ttest_1samp(part["mean_unique_a"], 0, alternative="greater")
    rows.append({"roi": roi, "n": len(part), "joint_r2": part["mean_r2_joint"].mean(),
                 "minilm_unique_r2": part["mean_unique_a"].mean(), "word_rate_unique_r2": part["mean_unique_b"].mean(),
                 "shared_r2": part["mean_shared"].mean(), "p_minilm_unique": p})
print(f"\nBanded fit {partition['band_a'].iloc[0]} + {partition['band_b'].iloc[0]}: held-out R², mean over "
      "participants; p: one-sided t-test of MiniLM's unique R² > 0\n")
print(pd.DataFrame(rows).round(4).to_string(index=False))

# %% 2. The group mean, every fifth of the story held out in turn
if args.in_turn:
    from encoding.segments import predict_segments_in_turn

    config = load_config(REPO_ROOT / "configs" / "alice.yaml")
    runs = [np.loadtxt(p) for p in sorted((REPO_ROOT / "encoding/datasets/alice/timecourses_6mm").glob("*.txt"))]
    usable = [run for run in runs if run.std() > 0]
    folder = Path(tempfile.mkdtemp(prefix="alice-group-"))
    np.savetxt(folder / "group.txt", np.mean([(r - r.mean(0)) / r.std(0) for r in usable], axis=0))
    names = yaml.safe_load((REPO_ROOT / "configs" / "alice.yaml").read_text())["runs"][0]["names"]
    raw = {**yaml.safe_load((REPO_ROOT / "configs" / "alice.yaml").read_text()), "runs": None, "transcript": {},
           "features_dir": config["features_dir"], "subjects": {"group": {"runs": [
               {"path": str(folder / "group.txt"), "names": names, "stimulus_run": "alice", "tr": 2.0}]}}}
    group_config = load_config(raw, base_dir=folder)
    lines = []
    for model, layer in (("minilm", 4), ("word_rate", 0), ("sound_power", 0)):
        held = predict_segments_in_turn(group_config, "group", model, "none", layer)
        edges = np.cumsum([0] + held.lengths)
        per_part = [[np.corrcoef(held.responses[a:b, j], held.prediction[a:b, j])[0, 1] for j in range(6)]
                    for a, b in zip(edges[:-1], edges[1:])]
        lines.append(pd.DataFrame([held.r] + per_part, columns=names,
                                  index=[f"{model}:{layer} all"] + [f"{model}:{layer} {s}" for s in held.segments]))
    print(f"\nThe {len(usable)} participants' mean time course, each fifth of the story held out in turn: r over all "
          "362 volumes, then over each held-out fifth\n")
    print(pd.concat(lines).round(3).to_string())
