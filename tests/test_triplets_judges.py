"""Collecting odd-one-out judgments: the real MiniLM similarity judge, chat judges on tiny random-weight
LLM/MLLMs scored against their own full-sequence log-probabilities, resume after kill -9, sharding, bad input."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest_extractors import assert_same_h5, build_qwen2_5_vl, byte_tokenizer  # noqa: F401

from encoding.rsa import compare_rdms
from encoding.triplets import collect_judgments, odd_one_out_probabilities, read_judgments, spose_similarity
from encoding.triplets.__main__ import main
from encoding.triplets._judges import cosine_similarity
from encoding.triplets._spose import hits
from extractors.parts import part_files, read_records

REPO = Path(__file__).resolve().parents[1]
THINGS = REPO.parent / "shared" / "data" / "things" / "spose_embedding66d_rescaled.csv"
QWEN_TEXT_TEMPLATE = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
                      "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def things_items(tmp_path_factory):
    """40 THINGS objects: the name as THINGS spells it, the words the judge reads."""
    folder = tmp_path_factory.mktemp("things")
    if THINGS.is_file():
        names = pd.read_csv(THINGS)["image_name"].str.replace(r"_\d+[a-z]?\.jpg$", "", regex=True)
        names = names[::46][:40].tolist()
    else:   # the same kind of everyday objects, when the shared data are absent
        names = ["aardvark", "abacus", "accordion", "acorn", "air_conditioner", "airplane", "alligator", "almond",
                 "ambulance", "anchor", "ant", "apple", "apron", "aquarium", "armchair", "arrow", "asparagus",
                 "axe", "baby", "backpack", "bagel", "ball", "balloon", "banana", "banjo", "barrel", "baseball",
                 "basket", "bat", "bathtub", "battery", "beach", "bean", "bear", "beaver", "bed", "bee", "beer",
                 "bell", "belt"]
    path = folder / "items.tsv"
    pd.DataFrame({"name": names, "label": [n.replace("_", " ") for n in names]}).to_csv(path, sep="\t", index=False)
    return path


def test_minilm_similarity_judge_is_deterministic_and_its_spose_embedding_follows_its_similarity(things_items,
                                                                                                  tmp_path, capsys):
    from extractors.words import load_text_model, minilm_folder, word_embeddings

    first = collect_judgments(things_items, minilm_folder(), tmp_path / "a", n_triplets=8000, progress=False)
    # the command line names the offline MiniLM: the same judge, the same store
    assert main(["collect", "--items", str(things_items), "--model", "minilm", "--n-triplets", "8000", "--out",
                 str(tmp_path / "b"), "--quiet"]) == 0
    again = tmp_path / "b" / "triplets.h5"
    assert_same_h5(first, again)                                  # same choices, same scores, same record
    judgments = read_judgments(first)
    assert judgments.done.all() and judgments.parameters["judge"] == "similarity"
    # the stored scores are the judge's cosine similarities of the pair left when each item is taken out
    tokenizer, model = load_text_model(minilm_folder())
    cosine = cosine_similarity(word_embeddings(list(judgments.items.words), tokenizer, model)[-1])
    t = judgments.triplets
    expected = np.stack([cosine[t[:, 1], t[:, 2]], cosine[t[:, 0], t[:, 2]], cosine[t[:, 0], t[:, 1]]], 1)
    np.testing.assert_allclose(judgments.scores, expected, rtol=0, atol=1e-6)
    assert (judgments.choice == judgments.scores.argmax(1)).all()
    first_odd, repeat_odd = judgments.repeat_pairs()
    assert len(first_odd) == 800 and (first_odd == repeat_odd).all()   # order-free judge: fully consistent
    # fit and evaluate through the command line; the files round-trip what was fitted
    fit = tmp_path / "spose"
    assert main(["fit", str(tmp_path / "a"), "--out", str(fit), "--dims", "20", "--lambdas", "0.004", "--seeds",
                 "2", "--epochs", "40", "--batch-size", "400", "--lr", "0.01", "--quiet"]) == 0
    table = pd.read_csv(fit / "embedding.tsv", sep="\t")
    with h5py.File(fit / "embedding.h5") as h5, h5py.File(fit / "similarity.h5") as sim:
        embedding, similarity = h5["embedding"][()], sim["similarity"][()]
        assert h5["seeds/seed_0"].shape[0] == h5["seeds/seed_1"].shape[0] == 40
        assert h5["reproducibility"].shape == (embedding.shape[1],)
    assert table["item"].tolist() == list(judgments.items.names)
    np.testing.assert_allclose(table.drop(columns="item").to_numpy(), embedding, rtol=1e-5)
    np.testing.assert_allclose(similarity, spose_similarity(embedding), rtol=1e-6)
    top = pd.read_csv(fit / "top_items.tsv", sep="\t")
    assert len(top) == 10 * embedding.shape[1] and (fit / "top_items.png").stat().st_size > 10_000
    rsa = compare_rdms(1 - similarity, 1 - cosine, "spearman")
    print(f"MiniLM judge: RSA of the SPoSE similarity with the judge's cosine similarity, Spearman {rsa:.3f}")
    assert rsa > 0.8, rsa                                          # measured 0.9 (see the report)
    assert main(["evaluate", str(fit), "--reference", str(THINGS) if THINGS.is_file() else str(fit / "embedding.tsv"),
                 "--permutations", "99", "--bootstrap", "100", "--quiet"]) == 0
    summary = json.loads((fit / "evaluation" / "evaluation.json").read_text())
    test_triplets, test_choices = judgments.select("test")
    credit = hits(odd_one_out_probabilities(embedding, test_triplets), test_choices)
    assert summary["accuracy"]["accuracy"] == pytest.approx(credit.mean(), abs=1e-12)
    assert credit.mean() > 0.75
    assert summary["repeat_agreement"] == {"n": 800, "agreement": 1.0, "ci_low": 1.0, "ci_high": 1.0}
    assert summary["reference_rsa"]["n_items"] == 40
    assert "Spearman" in (fit / "evaluation" / "evaluation.md").read_text()
    # --heldout <collection>/<split>: here the training split, on which the fit must do at least as well
    assert main(["evaluate", str(fit), "--heldout", str(tmp_path / "a" / "train"), "--out", str(tmp_path / "on-train"),
                 "--bootstrap", "0", "--quiet"]) == 0
    on_train = json.loads((tmp_path / "on-train" / "evaluation.json").read_text())
    assert on_train["split"] == "train" and on_train["accuracy"]["n"] == 7200
    assert on_train["accuracy"]["accuracy"] >= summary["accuracy"]["accuracy"] - 0.02
    # a held-out store whose item index lies past the embedding's items: one sentence, no traceback
    shutil.copytree(tmp_path / "b", tmp_path / "corrupt")
    with h5py.File(tmp_path / "corrupt" / "triplets.h5", "a") as h5:
        h5["triplets"][-1, 1] = 40                                  # a repeat of the test split; 40 items: 0..39
    capsys.readouterr()
    code, message = _error(capsys, ["evaluate", str(fit), "--heldout", str(tmp_path / "corrupt"), "--out",
                                    str(tmp_path / "corrupt-eval"), "--quiet"])
    assert code == 2 and "\n" not in message and not (tmp_path / "corrupt-eval").exists()
    assert "corrupt/triplets.h5: field 'triplets' holds item index 40" in message, message
    assert f"{fit / 'embedding.h5'} has 40 items" in message, message


def _images(folder, names, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):   # two sizes: rows of a batch differ in length and are padded
        size = (56, 84) if k % 2 else (112, 112)
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def mllm_study(tmp_path_factory):
    """A tiny random-weight Qwen2.5-VL, 8 items with one image each, and an uninterrupted collection."""
    root = tmp_path_factory.mktemp("mllm")
    names = [f"object{i}" for i in range(8)]
    (root / "items.txt").write_text("\n".join(names))
    study = {"items": root / "items.txt", "images": _images(root / "images", names), "root": root,
             "model": build_qwen2_5_vl(root / "qwen2_5_vl")}
    study["reference"] = collect_judgments(study["items"], study["model"], root / "reference", n_triplets=16,
                                           images=study["images"], family="qwen2_5_vl", batch_size=2,
                                           repeats=2, test_fraction=0.25, progress=False)
    return study


def _full_sequence_log_probability(processor, model, text, images, n_answer_tokens):
    """log P(answer | prompt) from one unbatched forward pass over prompt + answer, all logits kept."""
    import torch

    inputs = processor(text=[text], images=images, return_tensors="pt") if images else processor(
        text=[text], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs, logits_to_keep=0).logits[0].float()   # 0: every position
    ids = inputs["input_ids"][0]
    positions = torch.arange(len(ids) - n_answer_tokens, len(ids))
    log_probs = torch.log_softmax(logits[positions - 1], -1)      # position p - 1 predicts token p
    return float(log_probs[torch.arange(n_answer_tokens), ids[positions]].sum())


def test_mllm_judge_scores_each_answer_by_its_log_probability_given_the_three_images(mllm_study):
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from encoding.triplets._items import load_image

    judgments = read_judgments(mllm_study["reference"])
    assert judgments.scores.shape == (18, 3) and np.isfinite(judgments.scores).all()
    assert (judgments.scores < 0).all() and (judgments.choice == judgments.scores.argmax(1)).all()
    prompt = judgments.parameters["prompt_format"]
    assert prompt.count("<|image_pad|>") == 3 and "odd one out" in prompt
    processor = AutoProcessor.from_pretrained(mllm_study["model"], local_files_only=True)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(mllm_study["model"], local_files_only=True).eval()
    for row in (0, 5, 16):                                         # a first showing, another, a repeat
        images = [load_image(judgments.items.images[i]) for i in judgments.triplets[row]]
        expected = [_full_sequence_log_probability(processor, model, prompt + answer, images, 1)
                    for answer in ("1", "2", "3")]
        np.testing.assert_allclose(judgments.scores[row], expected, rtol=0, atol=2e-5)


def test_text_llm_judge_sums_multi_token_answers_over_their_tokens(tmp_path):
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = byte_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>"], eos_token="<|im_end|>",
                               pad_token="<|endoftext|>")
    tokenizer.chat_template = QWEN_TEXT_TEMPLATE
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    folder = tmp_path / "qwen2-text"
    Qwen2ForCausalLM(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (tmp_path / "items.txt").write_text("\n".join(["apple", "pear", "hammer", "saw", "violin", "dog"]))
    answers = ["the first", "the second one", "third"]            # of different token lengths
    (tmp_path / "prompt.yaml").write_text(yaml.safe_dump({
        "prompt": "Odd one out? {item_1}, {item_2} or {item_3}.", "answers": answers}))
    store = collect_judgments(tmp_path / "items.txt", folder, tmp_path / "col", n_triplets=6, batch_size=4,
                              prompt_file=tmp_path / "prompt.yaml", repeats=0, progress=False)
    judgments = read_judgments(store)
    assert judgments.parameters["family"] == "causal_lm" and judgments.parameters["answers"] == answers
    model = Qwen2ForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    for row in range(6):
        words = [judgments.items.names[i] for i in judgments.triplets[row]]
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": f"Odd one out? {words[0]}, {words[1]} or {words[2]}."}],
            add_generation_prompt=True, tokenize=False)
        expected = [_full_sequence_log_probability(tokenizer, model, text + a, None, len(tokenizer(a)["input_ids"]))
                    for a in answers]
        np.testing.assert_allclose(judgments.scores[row], expected, rtol=0, atol=2e-5)


KILLABLE = textwrap.dedent("""
    import sys, time
    import torch
    torch.set_num_threads(2)
    from encoding.triplets import _judges
    from encoding.triplets.__main__ import main
    original = _judges.ChatJudge.score
    def slow(self, triplets):
        time.sleep(0.25)
        return original(self, triplets)
    _judges.ChatJudge.score = slow
    sys.exit(main({argv!r}))
""")


def _collect_argv(study, out):
    return ["collect", "--items", str(study["items"]), "--model", str(study["model"]), "--family", "qwen2_5_vl",
            "--images", str(study["images"]), "--n-triplets", "16", "--batch-size", "2", "--repeats", "2",
            "--test-fraction", "0.25", "--out", str(out), "--quiet"]


def _n_records(out):
    return sum(1 for part in part_files(out / "triplets.h5") for _ in read_records(part))


def test_kill_9_during_collection_then_rerun_gives_the_uninterrupted_store(mllm_study, tmp_path):
    out = tmp_path / "collection"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    code = KILLABLE.format(argv=_collect_argv(mllm_study, out))
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    start = time.time()
    while _n_records(out) < 3:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.time() - start < 180
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "triplets.h5").exists() and 3 <= _n_records(out) < 9    # 9 batches: killed midway
    with open(part_files(out / "triplets.h5")[0], "ab") as handle:          # and a record torn by the kill
        handle.write(b"MLLMPRT1" + bytes(40))
    assert main(_collect_argv(mllm_study, out)) == 0
    assert_same_h5(mllm_study["reference"], out / "triplets.h5")
    assert part_files(out / "triplets.h5") == []


def test_sharded_over_two_processes_gives_the_single_process_store(mllm_study, tmp_path):
    """torchrun sets what `accelerate launch` sets: batches are dealt to the ranks, rank 0 consolidates."""
    out = tmp_path / "collection"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "encoding.triplets",
               *_collect_argv(mllm_study, out)[:-1]]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(5 on this process of 2)" in done.stderr and "(4 on this process of 2)" in done.stderr
    assert "from 2 part file(s)" in done.stderr
    assert_same_h5(mllm_study["reference"], out / "triplets.h5")


def _error(capsys, argv):
    code = main(argv)
    message = capsys.readouterr().err.strip()
    return code, message


def test_bad_input_is_one_sentence_naming_the_file_and_field(mllm_study, tmp_path, capsys):
    study = mllm_study
    base = ["collect", "--items", str(study["items"]), "--model", str(study["model"]), "--family", "qwen2_5_vl",
            "--out", str(tmp_path / "out"), "--quiet"]
    unknown = tmp_path / "unknown.tsv"
    unknown.write_text("object0\tobject1\tobject2\nobject3\tunicorn\tobject4\n")
    repeated = tmp_path / "repeated.tsv"
    repeated.write_text("object0,object1,object0\n")
    images = tmp_path / "images"
    shutil.copytree(study["images"], images)
    (images / "object5.png").unlink()
    cases = [
        (base + ["--triplets", str(unknown)], ["unknown.tsv", "line 2", "'item'", "unicorn"]),
        (base + ["--triplets", str(repeated)], ["repeated.tsv", "line 1", "repeats an item"]),
        (base + ["--n-triplets", "10", "--images", str(images)], ["--images", "object5"]),
        (base + ["--n-triplets", "10", "--triplets", str(unknown)], ["--n-triplets", "exactly one"]),
        (base + ["--n-triplets", "100000"], ["--n-triplets", "56"]),
        (["fit", str(tmp_path / "nothing"), "--out", str(tmp_path / "fit")], ["nothing/triplets.h5", "not found"]),
        ([a for a in base if a not in ("--family", "qwen2_5_vl")] + ["--n-triplets", "10"], ["multimodal", "--family"]),
    ]
    for argv, fragments in cases:
        code, message = _error(capsys, argv)
        assert code == 2 and message.startswith("error: ") and "\n" not in message, message
        assert all(f in message for f in fragments), message
    assert not (tmp_path / "out").exists() and not (tmp_path / "fit").exists()
    # a store is never extended with other settings: one sentence, and the store is left as it was
    store = tmp_path / "existing"
    shutil.copytree(study["reference"].parent, store)
    before = (store / "triplets.h5").read_bytes()
    code, message = _error(capsys, _collect_argv(study, store)[:-1] + ["--seed", "3", "--quiet"])
    assert code == 2 and "triplets.h5: field 'sampling'" in message, message
    assert (store / "triplets.h5").read_bytes() == before


def test_top_items_figure_shows_each_dimensions_heaviest_items_as_images(mllm_study, tmp_path):
    import matplotlib.pyplot as plt

    from encoding.triplets import plot_top_items, top_items

    judgments = read_judgments(mllm_study["reference"])
    embedding = np.eye(8)[:, :3] * [3.0, 2.0, 1.0] + 0.01 * np.arange(8)[:, None]
    table = top_items(embedding, judgments.items.names, k=2)
    assert table.loc[table["rank"] == 1, "item"].tolist() == ["object0", "object1", "object2"]
    figure = plot_top_items(embedding, judgments.items.names, judgments.items.images, k=2,
                            output_file=tmp_path / "top.png")
    assert sum(len(ax.images) for ax in figure.axes) == 6 and (tmp_path / "top.png").stat().st_size > 5000
    assert [ax.get_title() for ax in figure.axes[:2]] == ["object0", "object7"]
    plt.close(figure)
