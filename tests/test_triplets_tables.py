"""Judgments made elsewhere, as a plain table: a planted embedding fitted and evaluated through the command
line, the table's repeated triplets as the agreement between repeats (which the planted model's accuracy
exceeds: it is no ceiling), and bad tables or fit settings as one sentence naming the file and the field."""
import json
import logging

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment
from test_triplets import planted_embedding, simulate_choices

from encoding.triplets import odd_one_out_probabilities, read_items, read_triplet_table, sample_triplets
from encoding.triplets.__main__ import main
from encoding.triplets._spose import hits

N_ITEMS, N_PLANTED, N_TRAIN, N_TEST, N_AGAIN = 60, 5, 16_000, 4_000, 2_000
# fast optimisation for a small study (the recipe's batch 100 and lr 0.001 need hundreds of epochs)
FAST = ["--seeds", "2", "--epochs", "40", "--batch-size", "1000", "--lr", "0.02", "--quiet"]


@pytest.fixture(scope="module")
def planted_table(tmp_path_factory):
    """60 items on 5 planted dimensions; 16,000 training and 4,000 test judgments drawn from the planted
    model, and 2,000 of the test triplets judged again (another order, another draw). Scaled so that the
    best possible accuracy (mean max p) is 0.67, where two judgments agree only 0.58 of the time."""
    folder = tmp_path_factory.mktemp("table")
    planted = 0.6 * planted_embedding(N_ITEMS, N_PLANTED, seed=4)
    names = np.array([f"object{i:02d}" for i in range(N_ITEMS)])
    triplets = sample_triplets(N_ITEMS, N_TRAIN + N_TEST, 5)
    again = np.roll(triplets[N_TRAIN:N_TRAIN + N_AGAIN], 1, axis=1)
    shown = np.concatenate([triplets, again])
    choices = np.concatenate([simulate_choices(planted, triplets, seed=6), simulate_choices(planted, again, seed=7)])
    split = np.where(np.arange(len(shown)) < N_TRAIN, "train", "test")
    odd = shown[np.arange(len(shown)), choices]
    pd.DataFrame({"participant": np.arange(len(shown)) % 7, "item_1": names[shown[:, 0]],
                  "item_2": names[shown[:, 1]], "item_3": names[shown[:, 2]], "odd": names[odd],
                  "split": split}).to_csv(folder / "judgments.tsv", sep="\t", index=False)
    pd.DataFrame({"name": names}).to_csv(folder / "items.tsv", sep="\t", index=False)
    return {"folder": folder, "planted": planted, "names": names, "shown": shown, "choices": choices,
            "test": split == "test", "odd": odd}


def test_a_planted_embedding_is_fitted_from_a_triplet_table_and_its_repeats_are_no_ceiling(planted_table, tmp_path,
                                                                                            capsys):
    study, fit = planted_table, tmp_path / "spose"
    table, items = study["folder"] / "judgments.tsv", study["folder"] / "items.tsv"
    assert main(["fit", str(table), "--items", str(items), "--out", str(fit), "--dims", "10", "--lambdas",
                 "0.01,0.03", *FAST]) == 0
    embedding = pd.read_csv(fit / "embedding.tsv", sep="\t")
    assert embedding["item"].tolist() == study["names"].tolist()
    weights = embedding.drop(columns="item").to_numpy()
    assert f"{weights.shape[1]} of 10 dimensions kept after pruning" in capsys.readouterr().out
    r = np.corrcoef(study["planted"].T, weights.T)[:N_PLANTED, N_PLANTED:]
    rows, cols = linear_sum_assignment(-r)
    assert len(rows) == N_PLANTED and r[rows, cols].min() > 0.9, np.round(r[rows, cols], 3)
    fitted = json.loads((fit / "fit.json").read_text())
    assert fitted["n_train"] + fitted["n_validation"] == N_TRAIN          # the train rows only
    # evaluate: the table's test rows, repeats included (every row is a judgment)
    assert main(["evaluate", str(fit), "--bootstrap", "0", "--permutations", "0", "--quiet"]) == 0
    summary = json.loads((fit / "evaluation" / "evaluation.json").read_text())
    test = study["test"]
    assert summary["split"] == "test" and summary["accuracy"]["n"] == N_TEST + N_AGAIN
    planted_accuracy = hits(odd_one_out_probabilities(study["planted"], study["shown"][test]),
                            study["choices"][test]).mean()
    assert abs(summary["accuracy"]["accuracy"] - planted_accuracy) < 0.015, (summary["accuracy"], planted_accuracy)
    # the agreement is the share of the 2,000 repeats with the first judgment's odd one out ...
    first = study["odd"][N_TRAIN:N_TRAIN + N_AGAIN]
    assert summary["repeat_agreement"]["n"] == N_AGAIN
    assert summary["repeat_agreement"]["agreement"] == pytest.approx((first == study["odd"][-N_AGAIN:]).mean())
    # ... which estimates the mean of sum p^2, well below the mean of max p that the planted model reaches
    p = odd_one_out_probabilities(study["planted"], study["shown"][N_TRAIN:N_TRAIN + N_AGAIN])
    expected, ceiling = (p ** 2).sum(1).mean(), p.max(1).mean()
    assert abs(summary["repeat_agreement"]["agreement"] - expected) < 3 * np.sqrt(expected * (1 - expected) / N_AGAIN)
    assert ceiling - expected > 0.05 and summary["accuracy"]["accuracy"] > summary["repeat_agreement"]["agreement"]
    assert "no ceiling" in (fit / "evaluation" / "evaluation.md").read_text()


def test_a_table_without_split_is_fitted_whole_and_evaluated_only_on_other_judgments(planted_table, tmp_path,
                                                                                    capsys):
    study = planted_table
    whole = pd.read_csv(study["folder"] / "judgments.tsv", sep="\t")
    whole.drop(columns="split").iloc[:3000].to_csv(tmp_path / "all.csv", index=False)
    judgments = read_triplet_table(tmp_path / "all.csv", read_items(study["folder"] / "items.tsv"))
    assert judgments.select("train")[0].shape == (3000, 3) and not judgments.test.any()
    assert main(["fit", str(tmp_path / "all.csv"), "--items", str(study["folder"] / "items.tsv"), "--out",
                 str(tmp_path / "fit"), "--dims", "6", "--lambdas", "0.01", "--seeds", "1", "--epochs", "3",
                 "--quiet"]) == 0
    assert main(["evaluate", str(tmp_path / "fit"), "--quiet"]) == 2
    message = capsys.readouterr().err.strip()
    assert "all.csv: field 'split' is missing" in message and "--heldout" in message and "\n" not in message
    assert not (tmp_path / "fit" / "evaluation").exists()
    assert main(["evaluate", str(tmp_path / "fit"), "--heldout", str(study["folder"] / "judgments.tsv"), "--bootstrap",
                 "0", "--quiet"]) == 0
    assert json.loads((tmp_path / "fit" / "evaluation" / "evaluation.json").read_text())["accuracy"]["n"] == 6000


def test_more_dimensions_than_items_are_warned_about_and_the_kept_ones_are_counted(tmp_path, capsys, caplog):
    names = np.array([f"object{i}" for i in range(8)])
    triplets = sample_triplets(8, 56, 1)                             # every triplet of 8 items
    odd = triplets[np.arange(56), simulate_choices(planted_embedding(8, 2, seed=1), triplets, seed=2)]
    pd.DataFrame({"item_1": names[triplets[:, 0]], "item_2": names[triplets[:, 1]], "item_3": names[triplets[:, 2]],
                  "odd": names[odd]}).to_csv(tmp_path / "eight.csv", index=False)
    (tmp_path / "items.txt").write_text("\n".join(names))
    with caplog.at_level(logging.WARNING, logger="encoding.triplets"):
        assert main(["fit", str(tmp_path / "eight.csv"), "--items", str(tmp_path / "items.txt"), "--out",
                     str(tmp_path / "fit"), "--dims", "12", "--lambdas", "0.01", "--seeds", "1", "--epochs", "30",
                     "--batch-size", "10", "--lr", "0.01", "--quiet"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "eight.csv: --dims 12 exceeds its 8 items" in warnings[0], warnings
    kept = pd.read_csv(tmp_path / "fit" / "embedding.tsv", sep="\t").shape[1] - 1
    assert f"{kept} of 12 dimensions kept after pruning" in capsys.readouterr().out


def test_bad_tables_and_fit_settings_are_one_sentence_naming_the_file_and_field(planted_table, tmp_path, capsys):
    study = planted_table
    items = str(study["folder"] / "items.tsv")
    good = pd.read_csv(study["folder"] / "judgments.tsv", sep="\t").iloc[:400]

    def table(name, *cells, drop=None):
        """The first 400 judgments, with (row, column, value) cells changed (row 0 is the first data row)."""
        frame = good.drop(columns=drop) if drop else good.copy()
        for row, column, value in cells:
            frame.loc[row, column] = value
        frame.to_csv(tmp_path / name, sep="\t", index=False)
        return str(tmp_path / name)

    fit = ["--out", str(tmp_path / "fit"), "--quiet"]
    whole = str(study["folder"] / "judgments.tsv")
    outsider = next(n for n in study["names"] if n not in good.iloc[1][["item_1", "item_2", "item_3"]].tolist())
    cases = [
        (["fit", table("no_odd.tsv", drop="odd"), "--items", items, *fit],
         ["no_odd.tsv", "field 'odd' is missing", "item_1, item_2, item_3, odd"]),
        (["fit", table("unknown.tsv", (2, "item_2", "unicorn")), "--items", items, *fit],
         ["unknown.tsv", "row 3", "'item_2'", "unicorn"]),
        (["fit", table("stray.tsv", (1, "odd", outsider)), "--items", items, *fit],
         ["stray.tsv", "row 2", "field 'odd'", outsider, "none of the row's"]),
        (["fit", table("twice.tsv", (0, "item_3", good.loc[0, "item_1"])), "--items", items, *fit],
         ["twice.tsv", "row 1", "repeat an item"]),
        (["fit", table("split.tsv", (0, "split", "validation")), "--items", items, *fit],
         ["split.tsv", "row 1", "field 'split'", "validation"]),
        (["fit", whole, *fit], ["judgments.tsv", "--items"]),
        (["fit", str(tmp_path / "collection"), "--items", items, *fit], ["collection", "--items"]),
        (["fit", whole, "--items", items, "--validation-fraction", "0", *fit], ["judgments.tsv", "--validation-fraction 0.0"]),
        (["fit", whole, "--items", items, "--dims", "0", *fit], ["judgments.tsv", "--dims 0"]),
        (["fit", table("few.tsv"), "--items", items, "--lambdas", "1e6", "--seeds", "1", "--epochs", "3", "--lr", "0.05",
          *fit], ["few.tsv", "every dimension was pruned at lambda 1e+06", "'lambdas'"]),
    ]
    for argv, fragments in cases:
        assert main(argv) == 2
        message = capsys.readouterr().err.strip()
        assert message.startswith("error: ") and "\n" not in message, message
        assert all(f in message for f in fragments), (fragments, message)
    assert not (tmp_path / "fit").exists()
