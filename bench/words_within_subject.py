"""Within-subject tests of model A against model B (``encoding.words`` compare): false positives on
simulated nulls and power on a planted study, for the tests over every outer fold's blocks (the old,
``compare.test_segments: null``), over the held-out ``last`` segment or the later ``half`` of the
segments, and a Nadeau-Bengio corrected t over the outer folds.

    python bench/words_within_subject.py nulls      # per-cell rates, 80 nulls x 50 targets, white and AR(0.5)
    python bench/words_within_subject.py clusters   # false sensor x time clusters, 200 nulls each (~7 min)
    python bench/words_within_subject.py planted    # power on tests/words_meg_planted.py, 12 simulations

Nulls: 400 words in 4 segments, blocks of 10 words, two models of 8 random features fitted to responses
they do not predict. Rates are printed with their 95 % (Clopper-Pearson) intervals; cells of one null
share its features, so the intervals are somewhat optimistic.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from encoding.words import fit_words, held_out_predictions  # noqa: E402
from encoding.words._compare import block_sums, compare_fits  # noqa: E402
from encoding.words._fit import _centre_within, _unit  # noqa: E402
from encoding.words._study import SubjectTargets  # noqa: E402
from words_meg_planted import ar_over_words  # noqa: E402

N_WORDS, BLOCK = 400, 10
SEGMENTS = np.repeat(np.arange(4), N_WORDS // 4)
DESIGNS = {"old (every fold)": None, "last": [3], "half": [2, 3]}


def rate(hits, n):
    ci = stats.binomtest(int(hits), int(n)).proportion_ci(0.95)
    return f"{hits}/{n} = {100 * hits / n:.1f} % [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"


def cell_p_values(X_a, X_b, Y, segments, test):
    """Per-target paired-t p of A against B over blocks, as compare's rows test them."""
    fits = [fit_words(X, Y, segments, n_permutations=0, test_segments=test) for X in (X_a, X_b)]
    if test is None:
        terms, tested = [f.sensor_r_terms for f in fits], segments
    else:
        terms, tested = [f.test_sensor_r_terms for f in fits], segments[np.isin(segments, test)]
    d = block_sums((terms[0] - terms[1]).astype(np.float64), tested, BLOCK)
    return stats.ttest_1samp(d.reshape(len(d), -1), 0).pvalue


def nadeau_bengio_p(X_a, X_b, Y, segments):
    """Corrected resampled t over the outer folds' r differences: variance (1/J + n_test/n_train) s^2, J - 1 df."""
    r = []
    for X in (X_a, X_b):
        Y_z, P, _, _ = held_out_predictions(X, Y.reshape(len(Y), -1), segments)
        Y_c, P_c = _centre_within(Y_z, segments), _centre_within(P, segments)
        r.append(np.stack([(_unit(Y_c[segments == s]) * _unit(P_c[segments == s])).sum(0)
                           for s in np.unique(segments)]))
    m = r[0] - r[1]
    J = len(m)
    t = m.mean(0) / np.sqrt((1 / J + 1 / (J - 1)) * m.var(0, ddof=1))
    return 2 * stats.t.sf(np.abs(t), J - 1)


def nulls(n_nulls=80, n_targets=50):
    for phi in (0.0, 0.5):
        p = {name: [] for name in [*DESIGNS, "Nadeau-Bengio"]}
        for k in range(n_nulls):
            rng = np.random.default_rng(1000 + k)
            Y = ar_over_words(N_WORDS, (n_targets, 1), phi, rng)
            X_a, X_b = ar_over_words(N_WORDS, (8,), phi, rng), ar_over_words(N_WORDS, (8,), phi, rng)
            for name, test in DESIGNS.items():
                p[name].append(cell_p_values(X_a, X_b, Y, SEGMENTS, test))
            p["Nadeau-Bengio"].append(nadeau_bengio_p(X_a, X_b, Y, SEGMENTS))
        print(f"AR {phi}: null cells at p < 0.05")
        for name, values in p.items():
            values = np.concatenate(values)
            print(f"  {name:18s} {rate((values < 0.05).sum(), values.size)}")


def clusters(n_nulls=200):
    from words_meg_planted import simulate

    info = simulate(20)[0].info
    windows = [(w / 10, (w + 1) / 10) for w in range(6)]
    for phi in (0.0, 0.5):
        false = dict.fromkeys(("old (every fold)", "half"), 0)
        for k in range(n_nulls):
            rng = np.random.default_rng(5000 + k)
            Y = ar_over_words(N_WORDS, (32, 6), phi, rng)
            X = {"a": ar_over_words(N_WORDS, (8,), phi, rng), "b": ar_over_words(N_WORDS, (8,), phi, rng)}
            target = SubjectTargets(Y, SEGMENTS, info, {"all": np.arange(32)}, windows, np.ones(N_WORDS, bool))
            for name in false:
                fits = {("s", m, 0): fit_words(X[m], Y, SEGMENTS, n_permutations=0, test_segments=DESIGNS[name])
                        for m in X}
                _, found, _ = compare_fits(fits, {"s": target}, ("a", "b"), {"a": 0, "b": 0}, "all",
                                           n_permutations=200, seed=k)
                false[name] += bool((found["p"] < 0.05).any())
        print(f"AR {phi}: nulls with a false sensor x time cluster (p < 0.05)")
        for name, hits in false.items():
            print(f"  {name:18s} {rate(hits, n_nulls)}")


def planted(n_simulations=12):
    import mne

    from encoding.words._compare import cluster_test_sensors_time
    from encoding.words._config import load_words_config
    from encoding.words._run import prepare
    from words_meg_planted import CHANNELS, PLANTED, model_features, write

    rows, late = [CHANNELS.index(c) for c in PLANTED], [3, 4]
    cells = {name: [] for name in [*DESIGNS, "Nadeau-Bengio"]}
    found = dict.fromkeys(DESIGNS, 0)
    for seed in range(n_simulations):
        config, facts = write(tempfile.mkdtemp(), seed=seed)
        target = prepare(load_words_config(config))[1]["sub-01"]
        A, B = model_features(facts["amplitude"], facts["number"], seed=seed)
        adjacency, _ = mne.channels.find_ch_adjacency(target.info, "eeg")
        shape = target.Y.shape[1:]
        for name, test in DESIGNS.items():
            fits = [fit_words(X, target.Y, target.segments, n_permutations=0, test_segments=test) for X in (A, B)]
            terms = [f.sensor_r_terms if test is None else f.test_sensor_r_terms for f in fits]
            tested = target.segments if test is None else target.segments[np.isin(target.segments, test)]
            d = block_sums((terms[0] - terms[1]).astype(np.float64), tested, BLOCK)
            cells[name].append(stats.ttest_1samp(d, 0).pvalue[np.ix_(rows, late)])
            _, clusters_found = cluster_test_sensors_time(d, adjacency, 200, seed=0)
            found[name] += any(p < 0.05 and sign > 0 and mask[np.ix_(rows, late)].sum() >= 7
                               for mask, p, sign in clusters_found)
        p = nadeau_bengio_p(A, B, target.Y, target.segments).reshape(shape)
        cells["Nadeau-Bengio"].append(p[np.ix_(rows, late)])
    print(f"planted A over B: cells at p < 0.05 of the {len(rows) * len(late)} planted cells, {n_simulations} "
          f"simulations; the planted sensor x time cluster found (>= 7 of its cells, p < 0.05)")
    for name, values in cells.items():
        values = np.concatenate([v.ravel() for v in values])
        cluster = f"; cluster in {found[name]} of {n_simulations}" if name in found else ""
        print(f"  {name:18s} {rate((values < 0.05).sum(), values.size)}{cluster}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("nulls", "clusters", "planted"))
    {"nulls": nulls, "clusters": clusters, "planted": planted}[parser.parse_args().what]()
