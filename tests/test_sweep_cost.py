"""The dry run's cost model: it counts the work the solver does (its form and, per fold, its choice of
partial fractions or direct scoring), its fitted overheads are recovered from timings that follow it
exactly, and its calibration is cached and reused."""
import json

import numpy as np
import pytest

from encoding.ridge import DEFAULT_ALPHAS, choose_form, run_splits
from encoding.ridge._kernel import decompose_kernel
from encoding.sweep import _cost
from encoding.sweep._cost import (_CALIBRATION, CostModel, fit_overheads, load_cost_model, overheads,
                                  work)


def _shape(n, m, p, t, folds, n_perm=0, alphas=len(DEFAULT_ALPHAS)):
    return {"n_train": n, "n_test": m, "n_features": p, "n_targets": t, "n_folds": folds, "n_alphas": alphas,
            "n_permutations": n_perm}


@pytest.mark.parametrize("n, p", [(400, 200), (400, 300), (400, 320), (400, 2000), (1200, 960), (1200, 961)])
def test_the_model_takes_the_solvers_form(n, p):
    splits = run_splits(np.repeat(np.arange(5), n // 5))
    counted = work(_shape(n, 100, p, 1000, 5))
    kernel = choose_form(p, splits) == "kernel"
    assert (counted[0] > 0) == kernel and (counted[1] > 0) == (not kernel)


@pytest.mark.parametrize("n_runs, alphas, expected", [(5, 17, "fractions"), (20, 3, "direct")])
def test_the_model_scores_a_fold_as_the_solver_does(n_runs, alphas, expected):
    # few validation TRs and few alphas make forming each alpha's prediction cheaper than the fractions
    rng = np.random.default_rng(0)
    n = 600
    X = rng.standard_normal((n + 50, 2000)).astype(np.float32)
    splits = run_splits(np.repeat(np.arange(n_runs), n // n_runs))
    grid = np.logspace(-2, 6, alphas)
    decomposition = decompose_kernel(X[:n], splits, X[n:], grid, "float32")
    methods = {"fractions" if fold.fractions is not None else "direct" for fold in decomposition.folds}
    assert methods == {expected}
    r, v = n - n // n_runs, n // n_runs
    fractions_cost = _cost._fold_scoring(r, v, alphas, True)
    assert (fractions_cost < alphas * v * r) == (expected == "fractions")


def test_planted_overheads_are_recovered_from_noise_free_timings():
    planted_rates = np.array([1.2e-10, 3e-10, 2e-11])
    planted = np.array([0.02, 4e-9, 6e-10])
    shapes = [_shape(n, m, p, t, folds, n_perm) for n, m, p, t, folds, n_perm in _CALIBRATION]
    counted = np.array([work(s) @ planted_rates for s in shapes])
    rows = np.array([overheads(s) for s in shapes])
    seconds = counted + rows @ planted
    assert seconds.max() / seconds.min() > 10
    np.testing.assert_allclose(fit_overheads(rows, seconds - counted), planted, rtol=1e-6)
    model = CostModel(np.concatenate([planted_rates, planted]))
    np.testing.assert_allclose([model.seconds(s) for s in shapes], seconds, rtol=1e-9)


def test_a_banded_fit_costs_its_samples_and_the_work_grows_as_counted():
    model = CostModel([1e-10, 3e-10, 2e-11, 0.01, 4e-9, 6e-10])
    single = _shape(2000, 400, 17920, 5000, 5)
    assert model.seconds({**single, "banded_iterations": 20}) == pytest.approx(20 * model.seconds(single))
    # the kernel form's per-target work: twice the targets add the same again above the fixed part
    w1, w2, w3 = (work({**single, "n_targets": t})[2] for t in (0, 5000, 10000))
    assert w3 - w2 == pytest.approx(w2 - w1) and w1 > 0
    # folds of 8,000 training TRs: the eigendecompositions scale as r^3
    assert work(_shape(10000, 2000, 17920, 1, 5))[0] == pytest.approx(5 * 8000.0 ** 3)


def test_the_calibration_is_cached_per_machine_and_reused(tmp_path, monkeypatch):
    calls = []
    coefficients = np.array([1e-10, 3e-10, 2e-11, 0.01, 4e-9, 6e-10])
    monkeypatch.setattr(_cost, "calibrate", lambda: calls.append(1) or coefficients)
    first = load_cost_model(tmp_path)
    second = load_cost_model(tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(first.coefficients, coefficients)
    np.testing.assert_array_equal(second.coefficients, coefficients)
    cached = json.loads((tmp_path / "cost_model.json").read_text())
    assert list(cached.values()) == [coefficients.tolist()]
    assert load_cost_model(tmp_path / "elsewhere", calibrate_if_missing=False) is None


def test_the_dry_run_says_its_estimate_is_for_cpu_cores_when_the_fits_run_on_a_gpu(tmp_path):
    from encoding.sweep import describe_plan
    from encoding.sweep._work import WorkFolder

    work = WorkFolder(tmp_path / "study.work", create=False)
    specs = [{"subject": "sub-01", "kind": "layer", "bands": [{"model": "qwen"}], "fingerprint": f"f{i}",
              "key": f"sub-01/qwen/caption/layer_{i}"}
             for i in range(3)]
    estimate = lambda spec: (3600.0, 1.5)  # noqa: E731  (one hour and 1.5 GB per fit)
    on_cpu = describe_plan(specs, work, estimate, "numpy")
    on_gpu = describe_plan(specs, work, estimate, "torch_cuda")
    assert "3 fits, 0 already done" in on_cpu and "3.00 CPU core-hours" in on_cpu and "GPU" not in on_cpu
    assert on_gpu.startswith(on_cpu)
    assert on_gpu[len(on_cpu):] == ("\nThe fits are set to run on the GPU (backend torch_cuda): this estimate is what "
                                    "one CPU core of this machine would take; the cost model has no GPU rates.")
