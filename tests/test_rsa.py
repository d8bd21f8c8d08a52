"""RSA: known-answer RDMs, equality with rsatoolbox, closed-form partial correlations, calibrated
Mantel tests, unbiased crossnobis, and the ``python -m encoding.rsa`` command end to end."""
import contextlib
import resource

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from encoding.rsa import (bootstrap_items, bootstrap_subjects, compare_rdms, crossnobis_rdm, item_bootstrap_samples,
                          mantel_test, noise_ceiling, noise_covariance, noise_precision, partial_correlation,
                          pattern_rdm, permute_items, semipartial_correlation, square_rdm, upper_triangle)
from encoding.rsa.__main__ import main
from encoding.rsa._patterns import item_design
from extractors.words import save_word_store
from features.events import event_row_weights
from features.store import FeatureStore


def _random_rdm(rng, n_items=10, ties=False):
    vector = upper_triangle(pattern_rdm(rng.standard_normal((n_items, 6))))
    return np.round(vector, 1) if ties else vector


def test_rdms_of_hand_built_patterns_have_their_known_entries():
    patterns = np.array([[1.0, 0, 0], [0, 1, 0], [1, 1, 0], [2, 2, 0]])
    cosine = pattern_rdm(patterns, "cosine")
    assert cosine[0, 1] == pytest.approx(1)
    assert cosine[0, 2] == pytest.approx(1 - 1 / np.sqrt(2))
    assert cosine[2, 3] == pytest.approx(0, abs=1e-12)
    euclidean = pattern_rdm(patterns, "euclidean")
    assert euclidean[0, 1] == pytest.approx(np.sqrt(2))
    assert euclidean[2, 3] == pytest.approx(np.sqrt(2))
    correlation = pattern_rdm(np.array([[1.0, 2, 3], [3, 2, 1], [2, 4, 6], [1, 3, 2]]), "correlation")
    assert correlation[0, 1] == pytest.approx(2)    # r = -1
    assert correlation[0, 2] == pytest.approx(0)    # r = +1
    assert correlation[0, 3] == pytest.approx(0.5)  # r = 0.5
    assert np.allclose(correlation, correlation.T) and np.all(np.diag(correlation) == 0)


def test_upper_triangle_and_square_rdm_round_trip():
    rdm = pattern_rdm(np.random.default_rng(0).standard_normal((7, 4)), "euclidean")
    vector = upper_triangle(rdm)
    assert vector.shape == (21,)
    assert np.allclose(square_rdm(vector), rdm)


@pytest.mark.parametrize("ours, theirs", [("spearman", "spearman"), ("kendall_tau_a", "tau-a"), ("pearson", "corr")])
def test_comparisons_equal_rsatoolbox_on_the_same_rdms_with_ties(ours, theirs):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    rng = np.random.default_rng(1)
    for _ in range(5):
        a, b = _random_rdm(rng, ties=True), _random_rdm(rng, ties=True)
        expected = rsatoolbox.rdm.compare(rsatoolbox.rdm.RDMs(a[None]), rsatoolbox.rdm.RDMs(b[None]), theirs)[0, 0]
        assert compare_rdms(a, b, ours) == pytest.approx(expected, abs=1e-12)


def test_item_bootstrap_equals_rsatoolbox_on_the_same_resampled_items():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference import bootstrap_sample_pattern

    rng = np.random.default_rng(2)
    brain, model = _random_rdm(rng, 9), _random_rdm(rng, 9, ties=True)
    brain_rdms, model_rdms = rsatoolbox.rdm.RDMs(brain[None]), rsatoolbox.rdm.RDMs(model[None])
    np.random.seed(0)
    indices, expected = [], []
    for _ in range(30):
        model_sample, index = bootstrap_sample_pattern(model_rdms)
        brain_sample = brain_rdms.subsample_pattern("index", index)
        expected.append(rsatoolbox.rdm.compare(brain_sample, model_sample, "spearman")[0, 0])
        indices.append(np.sort(index))
    ours = bootstrap_items(brain, model, "spearman", samples=np.array(indices))
    assert np.allclose(ours.samples, expected, atol=1e-12)


def test_item_bootstrap_distribution_matches_rsatoolbox_with_their_own_draws():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference import bootstrap_sample_pattern

    rng = np.random.default_rng(3)
    brain, model = _random_rdm(rng, 10), _random_rdm(rng, 10)
    np.random.seed(1)
    theirs = []
    for _ in range(400):
        model_sample, index = bootstrap_sample_pattern(rsatoolbox.rdm.RDMs(model[None]))
        brain_sample = rsatoolbox.rdm.RDMs(brain[None]).subsample_pattern("index", index)
        theirs.append(rsatoolbox.rdm.compare(brain_sample, model_sample, "spearman")[0, 0])
    ours = bootstrap_items(brain, model, "spearman", n_bootstrap=400, random_state=1).samples
    # Independent draws of one bootstrap distribution: same centre and spread within sampling error.
    assert abs(np.mean(ours) - np.mean(theirs)) < 3 * np.std(theirs) * np.sqrt(2 / 400)
    assert np.std(ours) == pytest.approx(np.std(theirs), rel=0.2)
    assert stats.ks_2samp(ours, theirs).pvalue > 0.01


def test_subject_bootstrap_equals_rsatoolbox_on_the_same_resampled_subjects():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference import bootstrap_sample_rdm

    rng = np.random.default_rng(4)
    model = _random_rdm(rng)
    subjects = np.array([model + rng.standard_normal(model.size) for _ in range(6)])
    np.random.seed(0)
    indices, expected = [], []
    for _ in range(20):
        sample, index = bootstrap_sample_rdm(rsatoolbox.rdm.RDMs(subjects))
        expected.append(rsatoolbox.rdm.compare(rsatoolbox.rdm.RDMs(model[None]), sample, "spearman").mean())
        indices.append(index)
    ours = bootstrap_subjects(subjects, model, "spearman", samples=np.array(indices))
    assert np.allclose(ours.samples, expected, atol=1e-12)


@pytest.mark.parametrize("ours, theirs", [("spearman", "spearman"), ("pearson", "corr")])
def test_noise_ceiling_equals_rsatoolbox_leave_one_subject_out_bounds(ours, theirs):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference import boot_noise_ceiling

    rng = np.random.default_rng(5)
    truth = _random_rdm(rng)
    subjects = np.array([truth + 0.5 * rng.standard_normal(truth.size) for _ in range(5)])
    lower, upper = noise_ceiling(subjects, ours)
    expected = boot_noise_ceiling(rsatoolbox.rdm.RDMs(subjects), method=theirs)
    assert (lower, upper) == pytest.approx(expected, abs=1e-12)
    assert lower < upper


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # inside rsatoolbox's Dataset
def test_noise_covariance_and_crossnobis_equal_rsatoolbox():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.data.noise import cov_from_residuals

    rng = np.random.default_rng(6)
    residuals = rng.standard_normal((40, 8)) @ rng.standard_normal((8, 8))
    assert np.allclose(noise_covariance(residuals), cov_from_residuals(residuals, method="shrinkage_diag"))
    patterns = rng.standard_normal((3, 6, 8))
    dataset = rsatoolbox.data.Dataset(patterns.reshape(-1, 8), obs_descriptors={
        "items": np.tile(np.arange(6), 3), "runs": np.repeat(np.arange(3), 6)})
    precision = noise_precision(residuals)
    expected = rsatoolbox.rdm.calc_rdm(dataset, method="crossnobis", descriptor="items", cv_descriptor="runs",
                                       noise=precision).get_vectors()[0]
    assert np.allclose(upper_triangle(crossnobis_rdm(patterns, precision)), expected)


def test_crossnobis_is_unbiased_where_plain_distances_are_not():
    rng = np.random.default_rng(7)
    n_sims, n_runs, n_targets = 400, 4, 20
    truth = rng.standard_normal((3, n_targets))
    truth[1] = truth[0]                       # items 0 and 1 are the same condition
    cross, plain = [], []
    for _ in range(n_sims):
        runs = truth + rng.standard_normal((n_runs, 3, n_targets))
        cross.append(crossnobis_rdm(runs)[[0, 0], [1, 2]])
        plain.append(pattern_rdm(runs.mean(0), "euclidean")[0, 1] ** 2 / n_targets)
    cross = np.array(cross)
    standard_error = cross[:, 0].std() / np.sqrt(n_sims)
    assert abs(cross[:, 0].mean()) < 3 * standard_error
    # A real difference comes out at its true size: the squared distance per target.
    expected = ((truth[0] - truth[2]) ** 2).mean()
    assert cross[:, 1].mean() == pytest.approx(expected, abs=4 * cross[:, 1].std() / np.sqrt(n_sims))
    # Without cross-validation the noise inflates it: 2 * noise variance / n_runs per target.
    assert np.mean(plain) == pytest.approx(2 / n_runs, rel=0.1)


def _three_correlated_rdms(rng, n_items=14):
    control = _random_rdm(rng, n_items)
    model = 0.6 * control + _random_rdm(rng, n_items)
    brain = 0.5 * model + 0.7 * control + 0.5 * _random_rdm(rng, n_items)
    return brain, model, control


def test_partial_and_semipartial_correlation_equal_their_closed_forms():
    brain, model, control = _three_correlated_rdms(np.random.default_rng(8))
    r = np.corrcoef([brain, model, control])
    r_ab, r_ac, r_bc = r[0, 1], r[0, 2], r[1, 2]
    partial = (r_ab - r_ac * r_bc) / np.sqrt((1 - r_ac ** 2) * (1 - r_bc ** 2))
    semipartial = (r_ab - r_ac * r_bc) / np.sqrt(1 - r_bc ** 2)
    assert partial_correlation(brain, model, [control]) == pytest.approx(partial, abs=1e-12)
    assert semipartial_correlation(brain, model, [control]) == pytest.approx(semipartial, abs=1e-12)
    ranks = [stats.rankdata(v) for v in (brain, model, control)]
    assert partial_correlation(brain, model, [control], "spearman") == pytest.approx(
        partial_correlation(*ranks[:2], [ranks[2]]), abs=1e-12)


def test_partial_correlation_with_two_controls_equals_the_precision_matrix_form():
    rng = np.random.default_rng(9)
    brain, model, control = _three_correlated_rdms(rng)
    second = 0.4 * brain + _random_rdm(rng, 14)
    precision = np.linalg.inv(np.corrcoef([brain, model, control, second]))
    expected = -precision[0, 1] / np.sqrt(precision[0, 0] * precision[1, 1])
    assert partial_correlation(brain, model, [control, second]) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("controls", [0, 1])
def test_mantel_p_values_are_uniform_under_the_null(controls):
    rng = np.random.default_rng(10 + controls)
    p_values = []
    for _ in range(300):
        brain, model = _random_rdm(rng, 7), _random_rdm(rng, 7)
        extra = [0.5 * model + _random_rdm(rng, 7)] if controls else []
        p_values.append(mantel_test(square_rdm(brain), model, "spearman", extra, n_permutations=99,
                                    random_state=rng).p_value)
    assert stats.kstest(p_values, "uniform").pvalue > 0.01
    assert np.mean(np.array(p_values) <= 0.05) == pytest.approx(0.05, abs=0.035)


def test_mantel_p_value_is_small_under_a_planted_effect():
    rng = np.random.default_rng(12)
    model = _random_rdm(rng, 12)
    brain = model + 0.5 * model.std() * rng.standard_normal(model.size)
    result = mantel_test(square_rdm(brain), model, "spearman", n_permutations=199, random_state=0)
    assert result.score > 0.7
    assert result.p_value == pytest.approx(1 / 200)
    tau = mantel_test(square_rdm(brain), model, "kendall_tau_a", n_permutations=99, random_state=0)
    assert tau.p_value == pytest.approx(1 / 100)


def test_item_bootstrap_interval_covers_the_estimate_and_samples_are_sorted_draws():
    rng = np.random.default_rng(13)
    model = _random_rdm(rng, 12)
    brain = model + rng.standard_normal(model.size) * model.std()
    result = bootstrap_items(brain, model, n_bootstrap=200, random_state=0)
    assert result.ci_low < result.estimate < result.ci_high
    samples = item_bootstrap_samples(12, 5, random_state=0)
    assert samples.shape == (5, 12) and np.all(np.diff(samples, axis=1) >= 0)


def _rdms_at_scale(rng, n_items=320):
    """Brain, model and two control RDMs over ``n_items`` items (51,040 pairs at 320): Euclidean
    distances of random patterns, rounded (many ties) and offset by 1,000 (a shared baseline, as
    unnormalised distances have); both controls correlate with the model, the brain follows the
    model and the first control."""
    patterns = rng.standard_normal((4, n_items, 8))
    first, second = (upper_triangle(pattern_rdm(p, "euclidean")) for p in patterns[:2])
    model = upper_triangle(pattern_rdm(patterns[2], "euclidean")) + 0.8 * first + 0.5 * second
    brain = 0.3 * model + 0.6 * first + upper_triangle(pattern_rdm(patterns[3], "euclidean"))
    return [1000 + np.round(v, 3) for v in (brain, model, first, second)]


def _lstsq_reference(brain, model, controls, method, kind):
    """Partial / semipartial correlation computed independently: scipy ranks for Spearman, residuals
    of a least-squares fit on [1, controls] (np.linalg.lstsq), scipy's pearsonr."""
    vectors = [brain, model] + list(controls)
    if method == "spearman":
        vectors = [stats.rankdata(v) for v in vectors]
    C = np.column_stack([np.ones(brain.size)] + vectors[2:])

    def residual(y):
        return y - C @ np.linalg.lstsq(C, y, rcond=None)[0]

    return stats.pearsonr(residual(vectors[0]) if kind == "partial" else vectors[0], residual(vectors[1])).statistic


@pytest.fixture
def bounded_memory():
    """At most 3 GiB more address space than the process holds: an (n_pairs, n_pairs) projector,
    19 GiB at 320 items, raises MemoryError instead of exhausting a shared machine."""
    with _address_space_cap(3 * 2 ** 30):
        yield


@contextlib.contextmanager
def _address_space_cap(extra_bytes):
    """Let the process map at most ``extra_bytes`` more than it has now (Linux; elsewhere no cap)."""
    try:
        status = open("/proc/self/status").read()
    except OSError:
        yield
        return
    current = int(status.split("VmSize:")[1].split()[0]) * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = current + extra_bytes if hard == resource.RLIM_INFINITY else min(current + extra_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("method", ["spearman", "pearson"])
@pytest.mark.parametrize("kind", ["partial", "semipartial"])
def test_partial_and_semipartial_at_320_items_equal_lstsq_residual_correlations(method, kind, bounded_memory):
    brain, model, first, second = _rdms_at_scale(np.random.default_rng(20))
    expected = _lstsq_reference(brain, model, [first, second], method, kind)
    # the controls matter here: removing them moves the score by more than 0.2
    assert compare_rdms(brain, model, method) - expected > 0.2
    function = partial_correlation if kind == "partial" else semipartial_correlation
    assert function(brain, model, [first, second], method) == pytest.approx(expected, abs=1e-12)
    result = mantel_test(square_rdm(brain), model, method, [first, second], kind, n_permutations=0)
    assert result.score == pytest.approx(expected, abs=1e-12)
    assert result.null.shape == (0,) and result.p_value == 1.0


@pytest.mark.parametrize("kind", ["partial", "semipartial"])
def test_partial_mantel_null_scores_are_the_lstsq_partial_correlations_of_item_permutations(kind, monkeypatch,
                                                                                            bounded_memory):
    from encoding.rsa import _inference

    brain, model, first, second = _rdms_at_scale(np.random.default_rng(21))
    # blocks of 7 draws, so that 30 permutations cross block boundaries
    monkeypatch.setattr(_inference, "_BLOCK_BYTES", 7 * 8 * brain.size)
    result = mantel_test(square_rdm(brain), model, "spearman", [first, second], kind, n_permutations=30,
                         random_state=5)
    rng = np.random.default_rng(5)
    orders = [rng.permutation(320) for _ in range(30)]
    expected = [_lstsq_reference(permute_items(square_rdm(brain), order), model, [first, second], "spearman", kind)
                for order in orders]
    assert np.allclose(result.null, expected, rtol=0, atol=1e-12)
    observed = _lstsq_reference(brain, model, [first, second], "spearman", kind)
    assert result.score == pytest.approx(observed, abs=1e-12)
    assert result.p_value == pytest.approx((1 + np.sum(np.array(expected) >= observed)) / 31)


def test_plain_mantel_at_320_items_with_ties_equals_rsatoolbox_on_every_permutation(bounded_memory):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    brain, model, _, _ = _rdms_at_scale(np.random.default_rng(22))
    result = mantel_test(square_rdm(brain), model, "spearman", n_permutations=10, random_state=6)
    rng = np.random.default_rng(6)
    permuted = np.array([brain] + [permute_items(square_rdm(brain), rng.permutation(320)) for _ in range(10)])
    expected = rsatoolbox.rdm.compare(rsatoolbox.rdm.RDMs(permuted), rsatoolbox.rdm.RDMs(model[None]), "spearman")
    assert np.allclose(np.r_[result.score, result.null], expected[:, 0], rtol=0, atol=1e-12)


def test_partial_mantel_at_320_items_runs_in_bounded_memory_and_finds_the_unique_effect(bounded_memory):
    brain, model, first, second = _rdms_at_scale(np.random.default_rng(23))
    results = {kind: mantel_test(square_rdm(brain), model, "spearman", [first, second], kind, n_permutations=199,
                                 random_state=0) for kind in ("partial", "semipartial")}
    for kind, result in results.items():
        expected = _lstsq_reference(brain, model, [first, second], "spearman", kind)
        assert result.score == pytest.approx(expected, abs=1e-12)
        assert expected > 0.15                      # the model's part beyond the controls is real ...
        assert result.p_value == pytest.approx(1 / 200)   # ... and beats every permutation
        assert np.abs(result.null).max() < expected / 2


def test_partial_mantel_with_a_collinear_or_constant_control_equals_it_left_out():
    rng = np.random.default_rng(24)
    brain, model, control = _three_correlated_rdms(rng, 30)
    alone = mantel_test(square_rdm(brain), model, "spearman", [control], n_permutations=20, random_state=7)
    for controls in ([control, 2 * control + 5], [control, np.full(control.size, 3.0)]):
        result = mantel_test(square_rdm(brain), model, "pearson", controls, n_permutations=20, random_state=7)
        assert result.score == pytest.approx(partial_correlation(brain, model, [control]), abs=1e-12)
        ranked = mantel_test(square_rdm(brain), model, "spearman", controls, n_permutations=20, random_state=7)
        assert np.allclose(np.r_[ranked.score, ranked.null], np.r_[alone.score, alone.null], rtol=0, atol=1e-12)


def _word_study(folder, n_subjects=3, planted_layer=2, seed=0):
    """A features store of 12 'words' x 4 layers, and subjects whose patterns follow one layer."""
    rng = np.random.default_rng(seed)
    words = [f"word{i:02d}" for i in range(12)]
    embeddings = rng.standard_normal((4, 12, 16)).astype(np.float32)
    save_word_store(folder / "features" / "toy.h5", words, embeddings, "toy-model")
    weights = rng.standard_normal((16, 30))
    subjects = {}
    for s in range(n_subjects):
        np.save(folder / f"sub-{s}.npy", embeddings[planted_layer] @ weights + 2 * rng.standard_normal((12, 30)))
        subjects[f"sub-{s}"] = {"patterns": {"path": f"sub-{s}.npy"}}
    (folder / "rois.yaml").write_text(yaml.safe_dump({"early": list(range(15)), "late": list(range(15, 30))}))
    return words, subjects


def test_cli_writes_the_tidy_table_and_recovers_the_planted_layer(tmp_path):
    words, subjects = _word_study(tmp_path)
    config = {"features_dir": "features", "models": ["toy"], "subjects": subjects, "rois": {"atlas": "rois.yaml"},
              "n_permutations": 99, "n_bootstrap": 50}
    (tmp_path / "rsa.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    assert main(["--config", str(tmp_path / "rsa.yaml"), "--out", str(out), "--quiet"]) == 0
    table = pd.read_csv(out / "rsa.csv")
    for column in ("subject", "model", "instruction", "layer", "roi", "score", "p_value", "q_value", "n_items",
                   "ci_low", "ci_high", "noise_ceiling_lower", "noise_ceiling_upper"):
        assert column in table.columns
    assert len(table) == (3 + 1) * 4 * 2           # (subjects + group) x layers x ROIs
    assert set(table["n_items"]) == {12}
    best = table.loc[table.groupby(["subject", "roi"])["score"].idxmax()]
    assert set(best["layer"]) == {2}
    assert (best.loc[best["subject"] != "group", "p_value"] <= 0.02).all()
    for _, part in table.groupby("subject"):
        assert np.allclose(part["q_value"], stats.false_discovery_control(part["p_value"]))
    group = table[(table["subject"] == "group") & (table["layer"] == 2)]
    assert (group["noise_ceiling_upper"] >= group["score"]).all()
    with FeatureStore(tmp_path / "features" / "toy.h5") as store:
        assert store.read_text("words", "words") == words
    # A second run into the same folder is refused: exit code 2 and one sentence.
    assert main(["--config", str(tmp_path / "rsa.yaml"), "--out", str(out), "--quiet"]) == 2


def test_cli_compares_an_embedding_file_alone_with_no_features_store(tmp_path):
    """`models: []` with `embeddings`: no store is opened; the planted layer given as an embedding table is found in
    every subject with the permutation test's smallest p."""
    words, subjects = _word_study(tmp_path)
    planted = np.random.default_rng(0).standard_normal((4, 12, 16)).astype(np.float32)[2]   # _word_study's layer 2
    table = pd.DataFrame(planted, columns=[f"dim{i}" for i in range(16)])
    table.insert(0, "item", words)
    table.to_csv(tmp_path / "planted.tsv", sep="\t", index=False)
    config = {"models": [], "embeddings": {"planted": "planted.tsv"}, "subjects": subjects,
              "rois": {"atlas": "rois.yaml"}, "n_permutations": 99, "n_bootstrap": 50}
    (tmp_path / "rsa.yaml").write_text(yaml.safe_dump(config))
    assert main(["--config", str(tmp_path / "rsa.yaml"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    rows = pd.read_csv(tmp_path / "out" / "rsa.csv")
    assert set(rows["model"]) == {"planted"} and len(rows) == (3 + 1) * 2
    subjects_rows = rows[rows["subject"] != "group"]
    assert (subjects_rows["p_value"] == 0.01).all() and (subjects_rows["score"] > 0.3).all()


def test_cli_partial_rsa_removes_what_a_ratings_rdm_explains(tmp_path):
    rng = np.random.default_rng(15)
    words = [f"word{i:02d}" for i in range(16)]
    ratings = rng.standard_normal((16, 5))
    # The model shares the ratings' structure; the brain follows the ratings only.
    layer = np.hstack([ratings, 0.5 * rng.standard_normal((16, 5))]).astype(np.float32)
    save_word_store(tmp_path / "features" / "toy.h5", words, layer[None], "toy-model")
    for s in range(2):
        np.save(tmp_path / f"sub-{s}.npy", ratings @ rng.standard_normal((5, 20)) + 0.3 * rng.standard_normal((16, 20)))
    pd.DataFrame(ratings, columns=list("abcde")).assign(item=words).to_csv(tmp_path / "ratings.tsv", sep="\t",
                                                                          index=False)
    base = {"features_dir": "features", "models": ["toy"], "rois": {"atlas": "all"}, "comparison": "pearson",
            "subjects": {f"sub-{s}": {"patterns": {"path": f"sub-{s}.npy"}} for s in range(2)},
            "n_permutations": 0, "n_bootstrap": 0}
    scores = {}
    for name, extra in (("plain", {}), ("partial", {"controls": {"ratings": "ratings.tsv"}})):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({**base, **extra}))
        assert main(["--config", str(tmp_path / f"{name}.yaml"), "--out", str(tmp_path / name), "--quiet"]) == 0
        scores[name] = pd.read_csv(tmp_path / name / "rsa.csv").set_index("subject")["score"]
    assert (scores["plain"] > 0.5).all()
    assert (scores["partial"] < scores["plain"] - 0.2).all()
    with h5py.File(tmp_path / "partial" / "rdms.h5") as rdms:
        expected = partial_correlation(rdms["brain/sub-0/all"][()], rdms["model/toy/words/layer_0"][()],
                                       [rdms["control/ratings"][()]])
    assert scores["partial"]["sub-0"] == pytest.approx(expected, abs=1e-12)


def _scene_study(folder, tr=2.0, n_trs=150, n_items=6, n_targets=25, seed=14):
    """Three fMRI runs whose BOLD is an item GLM of true scene patterns plus noise, their events
    table, and a TR-rate features store whose layer 1 shows the true pattern while a scene is on
    screen (layer 0: unrelated patterns)."""
    rng = np.random.default_rng(seed)
    items = [f"scene{i}" for i in range(n_items)]
    truth, unrelated = rng.standard_normal((2, n_items, n_targets))
    rows, runs = [], []
    store = FeatureStore(folder / "features" / "clips.h5", "a", {"tr": tr, "model_id": "toy"})
    for run in ("run-1", "run-2", "run-3"):
        order = rng.permutation(np.repeat(np.arange(n_items), 3))
        events = pd.DataFrame({"onset": 10 + np.arange(order.size) * 14.0, "duration": 6.0,
                               "item": [items[i] for i in order], "run": run})
        bold = item_design(events, items, n_trs, tr) @ truth + 0.5 * rng.standard_normal((n_trs, n_targets))
        np.save(folder / f"{run}.npy", bold)
        runs.append({"path": f"{run}.npy", "stimulus_run": run, "tr": tr})
        on_screen = event_row_weights(events, n_trs, tr).T
        store.create_run("none", run, n_trs, [n_targets, n_targets], prompt="")
        store.write_clips("none", run, slice(0, n_trs), [on_screen @ unrelated[order], on_screen @ truth[order]])
        rows.append(events)
    store.close()
    pd.concat(rows).to_csv(folder / "events.tsv", sep="\t", index=False)
    return runs


def test_cli_crossnobis_from_fmri_runs_and_events_recovers_the_planted_layer(tmp_path):
    runs = _scene_study(tmp_path)
    config = {"features_dir": "features", "models": ["clips"], "events": "events.tsv", "brain_metric": "crossnobis",
              "metric": "euclidean", "subjects": {"sub-01": {"runs": runs}}, "n_permutations": 99,
              "n_bootstrap": 0}
    (tmp_path / "rsa.yaml").write_text(yaml.safe_dump(config))
    assert main(["--config", str(tmp_path / "rsa.yaml"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    table = pd.read_csv(tmp_path / "out" / "rsa.csv").set_index("layer")
    assert table.loc[1, "score"] > 0.8 and table.loc[1, "p_value"] <= 0.02
    assert table.loc[0, "score"] < 0.5


def test_cli_names_the_file_and_field_of_bad_input(tmp_path, capsys):
    (tmp_path / "rsa.yaml").write_text(yaml.safe_dump({"models": ["toy"], "subjects": {"s": {}}, "comparison": "x"}))
    assert main(["--config", str(tmp_path / "rsa.yaml")]) == 2
    error = capsys.readouterr().err
    assert "rsa.yaml" in error and "'comparison'" in error
