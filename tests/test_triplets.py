"""SPoSE and its outputs: the reference recipe's optimisation, planted embeddings recovered, the predicted
similarity, sampling and plans, evaluation numbers, and the embedding as a model RDM in encoding.rsa."""
from math import comb
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy import stats
from scipy.optimize import linear_sum_assignment

from encoding.rsa import compare_rdms, pattern_rdm, upper_triangle
from encoding.rsa.__main__ import main as rsa_main
from encoding.triplets import (SPoSE, dimension_reproducibility, fit_spose, heldout_accuracy, make_plan, odd_last,
                               odd_one_out_probabilities, prune, reference_rsa, repeat_agreement, sample_triplets,
                               spose_similarity)
from encoding.triplets._spose import INIT_MEAN, INIT_STD
from features.errors import InputError

THINGS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "things" / "spose_embedding66d_rescaled.csv"


def planted_embedding(n_items=200, n_dims=10, seed=0):
    """Sparse, non-negative: each item loads on one or two dimensions with Gamma-distributed weights."""
    rng = np.random.default_rng(seed)
    planted = np.zeros((n_items, n_dims))
    for i in range(n_items):
        dims = rng.choice(n_dims, size=rng.integers(1, 3), replace=False)
        planted[i, dims] = rng.gamma(4, 0.6, size=dims.size)
    return planted


def simulate_choices(embedding, triplets, seed=0):
    """Odd-one-out choices drawn from the SPoSE choice model of ``embedding``."""
    p = odd_one_out_probabilities(embedding, triplets)
    return (np.random.default_rng(seed).random(len(p))[:, None] > np.cumsum(p, 1)).sum(1)


def reference_recipe(ordered, init, lmbda, epochs, batch_size, lr, generator):
    """The SPoSE authors' training loop (ViCCo-Group/SPoSE: train.py, utils.py, models/model.py), written
    again from their recipe: one-hot item vectors through a bias-free Linear layer, the softmax of the
    pair's similarity against the two others, cross-entropy plus 0.01 x the negative parts plus
    lambda / n_items x the L1 norm, all differentiated by autograd, and plain (unfused) Adam."""
    n_items, n_dims = init.shape
    fc = torch.nn.Linear(n_items, n_dims, bias=False)
    with torch.no_grad():
        fc.weight.copy_(torch.as_tensor(init).T)
    optimizer = torch.optim.Adam(fc.parameters(), lr=lr)
    identity, data = torch.eye(n_items), torch.as_tensor(ordered)
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), batch_size):
            batch = data[order[start:start + batch_size]]
            anchor, positive, negative = fc(identity[batch.flatten()]).reshape(-1, 3, n_dims).unbind(1)
            sims = [(anchor * positive).sum(1), (anchor * negative).sum(1), (positive * negative).sum(1)]
            probability = torch.exp(sims[0]) / torch.stack([torch.exp(s) for s in sims]).sum(0)
            weights = fc.weight
            loss = (-torch.log(probability)).mean() + 0.01 * torch.relu(-weights).sum() \
                + lmbda / n_items * torch.norm(weights, 1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return fc.weight.detach().T.numpy()


def test_spose_optimisation_equals_the_reference_recipe_step_for_step():
    n_items, n_dims, lmbda, seed = 30, 8, 0.03, 4
    triplets = sample_triplets(n_items, 2000, 1)
    ordered = odd_last(triplets, simulate_choices(planted_embedding(n_items, 4, 1), triplets))
    ours = fit_spose(ordered, n_items, n_dims, lmbda, epochs=3, batch_size=100, lr=0.01, random_state=seed)
    # the same initial draws and the same mini-batch order as fit_spose
    generator = torch.Generator().manual_seed(seed)
    init = torch.randn(n_items, n_dims, generator=generator) * INIT_STD + INIT_MEAN
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny kernels: threads only wait on each other
    try:
        theirs = reference_recipe(ordered, init, lmbda, 3, 100, 0.01, generator)
    finally:
        torch.set_num_threads(threads)
    assert np.abs(theirs - init.numpy()).max() > 0.5          # 60 Adam steps moved the weights a long way
    assert (theirs < 0).mean() > 0.1                            # and the positivity term was active
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)


def test_planted_sparse_embedding_is_recovered_with_lambda_chosen_on_held_out_triplets():
    planted = planted_embedding()
    triplets = sample_triplets(200, 80_000, 1)
    choices = simulate_choices(planted, triplets, seed=2)
    train, test = slice(0, 60_000), slice(60_000, None)
    # lambda 0.05 prunes the embedding away early (chance-level choices): held-out triplets must reject it
    model = SPoSE(n_dims=20, lambdas=(0.01, 0.05), n_seeds=2, epochs=40, batch_size=3000, lr=0.02,
                  random_state=0).fit(triplets[train], choices[train], 200)
    table = model.validation_
    assert model.lambda_ == 0.01
    assert table.groupby("lambda")["validation_cross_entropy"].mean().idxmin() == 0.01
    assert (table.loc[table["lambda"] == 0.05, "validation_accuracy"] < 0.4).all()   # chance: 1/3
    assert model.embedding_.min() >= 0 and model.embedding_.shape[1] <= 20
    r = np.corrcoef(planted.T, model.embedding_.T)[:10, 10:]
    rows, cols = linear_sum_assignment(-r)
    assert r[rows, cols].min() > 0.9, np.round(r[rows, cols], 3)
    assert model.reproducibility_[cols].min() > 0.9              # the matched dimensions come back in both seeds
    planted_accuracy = (odd_one_out_probabilities(planted, triplets[test]).argmax(1) == choices[test]).mean()
    fitted_accuracy = model.score(triplets[test], choices[test])
    assert abs(fitted_accuracy - planted_accuracy) < 0.01, (fitted_accuracy, planted_accuracy)


def test_prune_clears_negatives_drops_vanished_dimensions_and_sorts_by_total_weight():
    raw = np.array([[0.5, 0.05, -0.2, 2.0], [0.3, 0.1, 0.15, -0.1], [0.0, -0.3, 0.0, 0.2]])
    pruned, kept = prune(raw)
    assert kept.tolist() == [3, 0, 2]                        # column 1 never exceeds 0.1; sums 2.2, 0.8, 0.15
    np.testing.assert_array_equal(pruned, np.clip(raw[:, [3, 0, 2]], 0, None).astype(np.float32))


def test_predicted_similarity_equals_the_loop_over_third_items():
    rng = np.random.default_rng(3)
    embedding = rng.gamma(1.0, 0.7, size=(9, 4)) * (rng.random((9, 4)) < 0.5)
    for scale in (1.0, 40.0):                                # 40: exponents far past float64's range
        x = scale * embedding
        s = x @ x.T
        expected = np.ones((9, 9))
        with np.errstate(over="ignore"):                         # exp(+large) = inf: the term is 0
            for i in range(9):
                for j in range(9):
                    if i != j:
                        terms = [1 / (1 + np.exp(s[i, k] - s[i, j]) + np.exp(s[j, k] - s[i, j]))
                                 for k in range(9) if k not in (i, j)]
                        expected[i, j] = np.mean(terms)
        np.testing.assert_allclose(spose_similarity(x, block_elements=100), expected, rtol=1e-12, atol=1e-15)


def test_reproducibility_is_one_for_a_permuted_copy_and_follows_the_fisher_mean():
    rng = np.random.default_rng(5)
    embedding = rng.gamma(1, 1, size=(50, 4))
    noisy = embedding[:, [2, 0, 3, 1]] + rng.normal(0, 0.5, size=(50, 4))
    assert np.allclose(dimension_reproducibility(embedding, [embedding[:, ::-1]]), 1)
    best = [max(stats.pearsonr(embedding[:, d], noisy[:, e])[0] for e in range(4)) for d in range(4)]
    expected = np.tanh((np.arctanh(best) + np.arctanh(1 - 1e-12)) / 2)
    np.testing.assert_allclose(dimension_reproducibility(embedding, [noisy, embedding]), expected, rtol=1e-9)


def test_uniform_sampling_draws_distinct_triplets_with_uniform_items_and_positions():
    triplets = sample_triplets(30, 3000, 7)
    keys = {tuple(sorted(t)) for t in triplets.tolist()}
    assert len(keys) == 3000 and (np.sort(triplets, 1)[:, :2] != np.sort(triplets, 1)[:, 1:]).all()
    np.testing.assert_array_equal(triplets, sample_triplets(30, 3000, 7))
    for position in range(3):                                    # each item equally often at each place
        counts = np.bincount(triplets[:, position], minlength=30)
        assert stats.chisquare(counts).pvalue > 1e-3
    every = sample_triplets(8, comb(8, 3), 0)                    # dense: every triplet exactly once
    assert len({tuple(sorted(t)) for t in every.tolist()}) == comb(8, 3)
    with pytest.raises(InputError, match="--n-triplets"):
        sample_triplets(8, comb(8, 3) + 1)


def test_plan_holds_out_a_test_split_and_repeats_test_triplets_with_every_item_moved():
    triplets = sample_triplets(40, 500, 1)
    plan = make_plan(triplets, test_fraction=0.2, n_repeats=30, random_state=3)
    assert len(plan) == 530 and plan.test[:500].sum() == 100
    source = plan.repeat_of[500:]
    assert plan.test[source].all() and len(set(source.tolist())) == 30
    shown_again = plan.triplets[500:]
    assert (np.sort(shown_again, 1) == np.sort(triplets[source], 1)).all()
    assert (shown_again != triplets[source]).all()              # no item at its first place
    # the triplets do not depend on the split or repeat settings
    np.testing.assert_array_equal(make_plan(triplets, 0.5, 0, 3).triplets, triplets)


def test_accuracy_and_repeat_agreement_are_the_shares_they_name():
    embedding = planted_embedding(30, 4, 2)
    triplets = sample_triplets(30, 400, 2)
    choices = simulate_choices(embedding, triplets, 3)
    result = heldout_accuracy(embedding, triplets, choices, n_bootstrap=200)
    credit = []
    for (a, b, c), choice in zip(triplets, choices):   # a tie among the most similar pairs shares the credit
        pairs = np.array([embedding[b] @ embedding[c], embedding[a] @ embedding[c], embedding[a] @ embedding[b]])
        best = np.flatnonzero(np.isclose(pairs, pairs.max(), rtol=1e-9, atol=0))
        credit.append((choice in best) / len(best))
    assert 0 < sum(c not in (0, 1) for c in credit)                 # ties happen: pairs sharing no dimension
    assert result["accuracy"] == pytest.approx(np.mean(credit), abs=1e-12)
    assert result["ci_low"] < result["accuracy"] < result["ci_high"]
    agreement = repeat_agreement([1, 2, 3, 4], [1, 2, 0, 4], n_bootstrap=0)
    assert agreement["agreement"] == 0.75 and agreement["n"] == 4


@pytest.mark.skipif(not THINGS.is_file(), reason="needs ../shared/data/things")
def test_reference_rsa_with_things_spose66_equals_spearman_over_shared_items(tmp_path):
    table = pd.read_csv(THINGS)
    names = table["image_name"].str.replace(r"_\d+[a-z]?\.jpg$", "", regex=True).tolist()
    human = table.iloc[:, 2:].to_numpy(float)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(names), 40, replace=False)
    ours_names = [names[i] for i in pick] + ["not_a_things_object"]
    ours = np.vstack([human[pick] / 30 + rng.gamma(1, 0.2, (40, 66)), rng.gamma(1, 1, (1, 66))])
    similarity = spose_similarity(ours)
    result = reference_rsa(ours_names, similarity, THINGS, "dot", n_permutations=99)
    dot = human[pick] @ human[pick].T
    expected = stats.spearmanr(upper_triangle(1 - similarity[:40, :40]), upper_triangle(1 - dot)).statistic
    assert result["n_items"] == 40 and result["score"] == pytest.approx(expected, abs=1e-12)
    assert result["score"] > 0.5 and result["p_value"] == 0.01


def test_rsa_takes_an_embedding_table_or_a_similarity_file_as_the_model_rdm(tmp_path):
    rng = np.random.default_rng(9)
    names = [f"object{i:02d}" for i in range(24)]
    embedding = rng.gamma(1, 1, size=(24, 5)) * (rng.random((24, 5)) < 0.6)
    similarity = spose_similarity(embedding)
    shuffled = rng.permutation(24)                                # rows in another order than the items
    pd.DataFrame(embedding[shuffled], columns=[f"dim_{d}" for d in range(5)]).assign(
        item=[names[i] for i in shuffled]).to_csv(tmp_path / "embedding.tsv", sep="\t", index=False)
    with h5py.File(tmp_path / "similarity.h5", "w") as h5:
        h5["similarity"] = similarity
        h5.create_dataset("items", data=names, dtype=h5py.string_dtype())
    np.save(tmp_path / "sub-01.npy", embedding @ rng.normal(size=(5, 40)) + 0.3 * rng.normal(size=(24, 40)))
    config = {"embeddings": {"table": "embedding.tsv", "spose": {"path": "similarity.h5"}}, "items": names,
              "subjects": {"sub-01": {"patterns": {"path": "sub-01.npy"}}}, "rois": {"atlas": "all"},
              "n_permutations": 99, "n_bootstrap": 0}
    (tmp_path / "rsa.yaml").write_text(yaml.safe_dump(config))
    assert rsa_main(["--config", str(tmp_path / "rsa.yaml"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    scores = pd.read_csv(tmp_path / "out" / "rsa.csv").set_index("model")
    brain = pattern_rdm(np.load(tmp_path / "sub-01.npy"))
    assert scores.loc["spose", "score"] == pytest.approx(compare_rdms(brain, 1 - similarity), abs=1e-12)
    assert scores.loc["table", "score"] == pytest.approx(compare_rdms(brain, pattern_rdm(embedding)), abs=1e-12)
    assert (scores["p_value"] == 0.01).all()
    bad = {**config, "embeddings": {"spose": "missing.h5"}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    assert rsa_main(["--config", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "bad"), "--quiet"]) == 2
