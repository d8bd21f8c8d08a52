"""Which alphas the CV score picks: himalaya's r2_score (the engine's) against its default l2_neg_loss.

    python bench/alpha_score.py --threads 1

himalaya's RidgeCV scores each fold by l2_neg_loss = -|y_val - y_hat|^2 / n_val unless told otherwise;
the engine (and its himalaya reference, ``fit_ridge(solver="primal"/"kernel")``) uses r2_score = 1 -
|y_val - y_hat|^2 / |y_val - mean(y_val)|^2. Averaged over folds, the two weight a fold's error by 1 / n_val
and by 1 / (its targets' sum of squares about their mean): they choose the same alphas exactly when every
validation fold's targets have the same variance per TR, as when each run is z-scored on its own
(``encoding.run``'s preprocessing), and differently otherwise. This script fits himalaya RidgeCV both
ways on the same arrays and leave-one-run-out folds (``bench/ridge_sweep.py``'s simulation, whose targets
are standardized over all TRs, not per run), then again after z-scoring the targets within each run,
and prints how many targets took another alpha and how far their test r moved.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import scipy.linalg  # noqa: F401  (loads scipy's BLAS before --threads limits it)
from himalaya.ridge import RidgeCV
from himalaya.scoring import l2_neg_loss, r2_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from encoding.ridge import pearson_r, run_splits  # noqa: E402
from ridge_sweep import simulate  # noqa: E402


def choices(X_train, Y_train, runs, X_test, Y_test, alphas, score_func):
    """himalaya RidgeCV with ``score_func``: chosen alphas and test r per target."""
    model = RidgeCV(alphas=alphas, cv=run_splits(runs), solver_params=dict(score_func=score_func, warn=False))
    model.fit(X_train, Y_train)
    return np.asarray(model.best_alphas_), pearson_r(Y_test, np.asarray(model.predict(X_test)))


def per_run_zscore(Y, runs):
    out = np.empty_like(Y)
    for run in np.unique(runs):
        rows = runs == run
        out[rows] = (Y[rows] - Y[rows].mean(0)) / Y[rows].std(0)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1500)
    parser.add_argument("--p", type=int, default=400)
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
    Y_train, Y_test, runs, train, test, layer_design = simulate(args.n, args.p, args.targets, 5, 1, 0)
    X = layer_design(0)
    alphas = np.logspace(-2, 6, 17)
    for label, Y in (("targets standardized over all training TRs", Y_train),
                     ("targets z-scored within each run", per_run_zscore(Y_train, runs))):
        variance = [float(Y[runs == run].var(0).mean()) for run in np.unique(runs)]
        alpha_r2, r_r2 = choices(X[train], Y, runs, X[test], Y_test, alphas, r2_score)
        alpha_l2, r_l2 = choices(X[train], Y, runs, X[test], Y_test, alphas, l2_neg_loss)
        differ = ~np.isclose(alpha_r2, alpha_l2, rtol=1e-5)
        print(f"{label}: mean variance per TR of each validation run {np.round(variance, 3).tolist()}; "
              f"r2_score and l2_neg_loss chose different alphas for {differ.sum()} of {len(differ)} targets "
              f"({differ.mean():.1%}); there max |delta test r| {np.abs(r_r2 - r_l2)[differ].max(initial=0):.2e}, "
              f"mean test r {r_r2.mean():.5f} (r2_score) vs {r_l2.mean():.5f} (l2_neg_loss)", flush=True)


if __name__ == "__main__":
    main()
