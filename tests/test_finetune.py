"""Fine-tuning a causal LM with transformers' Trainer: the loss on the data falls, the checkpoint is an
ordinary model folder whose word features load, multiple-choice records train on the answer only, and a
finished checkpoint is never replaced unasked."""
import json

import numpy as np
import pytest

from extractors.finetune import encode_records, main
from extractors.words_in_context import ContextRule, ensure_word_features, read_word_features
from features.errors import InputError
from words_meg_study import build_tiny_gpt2, one_torch_thread  # noqa: F401

pytest.importorskip("transformers")

TEXT = "Harry felt such joy that night. Ron felt such fear again."


def _mean_loss(folder, texts):
    """Mean next-token loss of a saved model over the texts: computed here, not by the Trainer."""
    import torch
    from transformers import AutoTokenizer, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = GPT2LMHeadModel.from_pretrained(folder, local_files_only=True).eval()
    losses = []
    for text in texts:
        ids = torch.tensor([tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]])
        with torch.no_grad():
            losses.append(float(model(ids, labels=ids).loss))
    return float(np.mean(losses))


def test_finetuning_lowers_the_loss_and_the_checkpoint_gives_word_features(tmp_path):
    base = build_tiny_gpt2(tmp_path / "base")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": TEXT}) + "\n" for _ in range(16)))
    out = tmp_path / "tuned"
    assert main(["--model", str(base), "--data", str(data), "--out", str(out), "--epochs", "3", "--lr", "3e-3",
                 "--batch-size", "4", "--device", "cpu"]) == 0
    before, after = _mean_loss(base, [TEXT]), _mean_loss(out, [TEXT])
    assert after < 0.9 * before
    summary = json.loads((out / "finetune.json").read_text())
    assert summary["task"] == "causal-lm" and summary["n_examples"] == 16
    assert summary["loss_after"] == pytest.approx(after, rel=1e-3)
    assert summary["loss_before"] == pytest.approx(before, rel=1e-3)
    assert not (tmp_path / "tuned.checkpoints").exists()
    # the checkpoint is read by the word features like any model folder, and its states are its own
    tuned = read_word_features(ensure_word_features(tmp_path / "tuned.h5", out, TEXT, progress=False), ContextRule(), 2)
    original = read_word_features(ensure_word_features(tmp_path / "base.h5", base, TEXT, progress=False),
                                  ContextRule(), 2)
    assert tuned.shape == original.shape == (11, 32) and not np.allclose(tuned, original, atol=1e-3)
    # a finished checkpoint is not replaced without --overwrite
    weights = (out / "model.safetensors").read_bytes()
    assert main(["--model", str(base), "--data", str(data), "--out", str(out), "--device", "cpu"]) == 2
    assert (out / "model.safetensors").read_bytes() == weights


def test_multiple_choice_records_train_on_the_correct_answer_only(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(build_tiny_gpt2(tmp_path / "base"), local_files_only=True)
    socialiqa = {"context": "Tracy cried at the news.", "question": "How does Tracy feel?", "answerA": "happy",
                 "answerB": "sad", "answerC": "bored", "label": "2"}
    piqa = {"goal": "Dry wet hands.", "sol1": "Use a towel.", "sol2": "Use water.", "label": 0}
    task, (first, second) = encode_records([socialiqa, piqa], tokenizer)
    assert task == "multiple-choice"
    for example, question, answer in ((first, "Tracy cried at the news. How does Tracy feel?", " sad"),
                                      (second, "Dry wet hands.", " Use a towel.")):
        n_question = len(tokenizer(question)["input_ids"])
        target = tokenizer(answer)["input_ids"] + [tokenizer.eos_token_id]
        assert example["labels"][:n_question] == [-100] * n_question
        assert example["labels"][n_question:] == target == example["input_ids"][n_question:]
    with pytest.raises(InputError, match="field 'label'"):
        encode_records([{**piqa, "label": 5}], tokenizer)
    with pytest.raises(InputError, match="field 'choices'"):
        encode_records([{"question": "Why?", "label": 0}], tokenizer)


def test_bad_training_data_is_one_sentence(tmp_path, capsys):
    base = build_tiny_gpt2(tmp_path / "base")
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\nnot json\n')
    capsys.readouterr()
    assert main(["--model", str(base), "--data", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.jsonl: line 2 is not JSON" in err and not (tmp_path / "o").exists()


def test_a_killed_finetuning_resumes_from_its_checkpoint_to_the_same_weights(tmp_path, monkeypatch):
    import transformers
    from safetensors.numpy import load_file

    from extractors.finetune import finetune

    base = build_tiny_gpt2(tmp_path / "base")
    texts = ["Harry felt such joy that night.", "Ron saw the owl again.", "Hermione felt fear.", "Neville ran."]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": texts[i % 4]}) + "\n" for i in range(12)))
    settings = dict(epochs=2, learning_rate=3e-3, batch_size=4, save_steps=2, device="cpu")
    whole = finetune(base, data, tmp_path / "whole", **settings)
    step, calls = transformers.Trainer.training_step, []

    def killed_at_the_fourth_step(self, *args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(transformers.Trainer, "training_step", killed_at_the_fourth_step)
    with pytest.raises(KeyboardInterrupt):
        finetune(base, data, tmp_path / "resumed", **settings)
    assert not (tmp_path / "resumed").exists() and (tmp_path / "resumed.checkpoints" / "checkpoint-2").is_dir()
    with pytest.raises(InputError, match="field 'learning_rate'"):      # other settings never resume it
        finetune(base, data, tmp_path / "resumed", **{**settings, "learning_rate": 1e-3})
    monkeypatch.setattr(transformers.Trainer, "training_step", step)
    resumed = finetune(base, data, tmp_path / "resumed", **settings)
    assert resumed["loss_after"] == whole["loss_after"]
    first, second = load_file(tmp_path / "whole" / "model.safetensors"), load_file(
        tmp_path / "resumed" / "model.safetensors")
    assert first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)


def test_a_datasets_folder_gives_the_records_of_its_train_split(tmp_path):
    datasets = pytest.importorskip("datasets")
    from extractors.finetune import read_records

    rows = {"goal": ["Dry wet hands.", "Open a jar."], "sol1": ["Use a towel.", "Twist the lid."],
            "sol2": ["Use water.", "Push the lid."], "label": [0, 0]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows),
                          "validation": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "piqa"))
    assert read_records(tmp_path / "piqa") == [{k: v[i] for k, v in rows.items()} for i in range(2)]
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "no-train"))
    with pytest.raises(InputError, match="field 'train' split is missing"):
        read_records(tmp_path / "no-train")
