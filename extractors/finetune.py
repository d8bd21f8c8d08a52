"""Fine-tune a causal language model on a text or multiple-choice dataset, with transformers' Trainer.

::

    python -m extractors.finetune --model gpt2 --data socialiqa.jsonl --out ./gpt2-socialiqa

The checkpoint written to ``--out`` is an ordinary ``save_pretrained`` folder (model + tokenizer), so the
word features of ``encoding.words`` read it like any other model: ``models: {socialiqa: ./gpt2-socialiqa}``.
This closes the loop of divergence mining: fine-tune on the domain the hypotheses name (emotion,
figurative language, physical commonsense), then compare brain alignment before and after.

Data: a JSON-lines file, or a folder written by ``datasets``' ``save_to_disk`` (its ``train`` split when it
holds several). Each record is

- causal LM: ``{"text": ...}``; the loss covers every token;
- multiple choice: the question (``context`` and/or ``question``, or PIQA's ``goal``) and its answers
  (``choices`` with a 0-based ``label``; SocialIQA's ``answerA``..``answerC`` with a 1-based ``label``;
  PIQA's ``sol1``/``sol2`` with a 0-based ``label``). The model learns to continue the question with the
  correct answer: the loss covers the answer's tokens only (the question's labels are -100), the usual
  way a causal LM is tuned on question-answer pairs.

Nothing lost: Trainer checkpoints go to ``<out>.checkpoints`` every ``--save-steps`` steps and a re-run
with the same command resumes from the last one; the final folder is written under a temporary name and
renamed when complete, and an existing ``--out`` is never replaced without ``--overwrite``. The loss on the
training data before and after, and every setting, go to ``<out>/finetune.json``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
from pathlib import Path

from features.errors import InputError, command

from .hub import local_files_only
from .words import is_local_source

log = logging.getLogger("extractors.finetune")

TASKS = ("auto", "causal-lm", "multiple-choice")


def read_records(path):
    """Records of a JSON-lines file or a ``datasets`` folder, as a list of dicts."""
    path = Path(path)
    if path.is_dir():
        try:
            import datasets
        except ImportError:
            raise InputError(f"{path}: a Hugging Face datasets folder needs `pip install datasets`.") from None
        try:
            data = datasets.load_from_disk(str(path))
        except (FileNotFoundError, ValueError) as err:
            raise InputError(f"{path}: not a folder written by datasets' save_to_disk ({err}).") from None
        if isinstance(data, datasets.DatasetDict):
            if "train" not in data:
                raise InputError(f"{path}: field 'train' split is missing; splits found: {', '.join(data)}.")
            data = data["train"]
        return [dict(row) for row in data]
    if not path.is_file():
        raise InputError(f"{path}: training data not found.")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: line {number} is not JSON ({err.msg}).") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}: line {number} is not a JSON object.")
        records.append(record)
    if not records:
        raise InputError(f"{path}: holds no records.")
    return records


def prompt_and_answer(record, where):
    """(question text, correct answer text) of a multiple-choice record (module docstring)."""
    question = " ".join(str(record[k]).strip() for k in ("context", "question", "goal") if record.get(k))
    if "choices" in record:
        choices, label = list(record["choices"]), int(record.get("label", -1))
    elif "answerA" in record:
        choices = [record[k] for k in ("answerA", "answerB", "answerC") if k in record]
        label = int(record.get("label", 0)) - 1     # SocialIQA counts answers from 1
    elif "sol1" in record:
        choices, label = [record["sol1"], record["sol2"]], int(record.get("label", -1))
    else:
        raise InputError(f"{where}: field 'choices' is missing (or answerA.., sol1..); a multiple-choice record "
                         f"needs its answers.")
    if not question or not 0 <= label < len(choices):
        raise InputError(f"{where}: field 'label' must index one of its {len(choices)} answers and the record needs a "
                         f"question (context/question/goal), found label {record.get('label')!r}.")
    return question, str(choices[label]).strip()


def encode_records(records, tokenizer, task="auto", max_length=256, where="data"):
    """Token ids and labels per record.

    Returns
    -------
    list of {"input_ids": list of int, "labels": list of int}; labels are -100 where no loss is taken.
    """
    task = ("causal-lm" if "text" in records[0] else "multiple-choice") if task == "auto" else task
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    examples = []
    for i, record in enumerate(records):
        if task == "causal-lm":
            if not str(record.get("text", "")).strip():
                raise InputError(f"{where}: record {i + 1} field 'text' is missing or empty.")
            ids = tokenizer(str(record["text"]), add_special_tokens=False)["input_ids"] + eos
            labels = list(ids)
        else:
            question, answer = prompt_and_answer(record, f"{where}: record {i + 1}")
            prompt = tokenizer(question, add_special_tokens=False)["input_ids"]
            target = tokenizer(" " + answer, add_special_tokens=False)["input_ids"] + eos
            ids, labels = prompt + target, [-100] * len(prompt) + target
        # keep the end: the answer (or the text's last tokens) must stay inside max_length
        examples.append({"input_ids": ids[-max_length:], "labels": labels[-max_length:]})
    return task, examples


class _Collator:
    """Pads a batch on the right; padded positions get attention 0 and label -100."""

    def __init__(self, pad_id):
        self.pad_id = pad_id

    def __call__(self, batch):
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[row, :n], labels[row, :n], mask[row, :n] = (torch.tensor(b["input_ids"]), torch.tensor(b["labels"]),
                                                           1)
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def finetune(model, data, out, task="auto", epochs=1.0, learning_rate=5e-5, batch_size=8, max_length=256, seed=0,
             save_steps=200, device=None, overwrite=False):
    """Fine-tune and write the checkpoint folder (module docstring).

    Returns
    -------
    dict: the settings and the mean loss on the training data before and after (``loss_before``,
    ``loss_after``), also written to ``<out>/finetune.json``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError(f"{out}: output folder already exists; pass --overwrite to replace it or --out to choose "
                         f"another.")
    if task not in TASKS:
        raise InputError(f"--task: expected one of {', '.join(TASKS)}, found {task!r}.")
    records = read_records(data)
    local = is_local_source(model)
    cached = local or local_files_only(model, "--model")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model), local_files_only=cached)
        lm = AutoModelForCausalLM.from_pretrained(str(model), local_files_only=cached)
    except OSError as err:
        where = "folder" if local else "Hugging Face id"
        raise InputError(f"--model {model}: cannot load it as a causal LM {where} ({str(err).splitlines()[0]}).") \
            from None
    task, examples = encode_records(records, tokenizer, task, max_length, str(data))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    checkpoints = Path(f"{out}.checkpoints")
    arguments = TrainingArguments(
        output_dir=str(checkpoints), num_train_epochs=float(epochs), learning_rate=float(learning_rate),
        per_device_train_batch_size=int(batch_size), per_device_eval_batch_size=int(batch_size), seed=int(seed),
        data_seed=int(seed), save_strategy="steps", save_steps=int(save_steps), save_total_limit=1,
        logging_steps=10, report_to=[], remove_unused_columns=False, dataloader_num_workers=0,
        use_cpu=device == "cpu" or device is None and not _cuda(), disable_tqdm=not sys.stderr.isatty())
    settings = {"model": str(model), "data_sha256": _digest(records), "task": task, "epochs": float(epochs),
                "learning_rate": float(learning_rate), "batch_size": int(batch_size), "max_length": int(max_length),
                "seed": int(seed)}
    _check_checkpoints(checkpoints, settings)
    collator = _Collator(pad)
    trainer = Trainer(model=lm, args=arguments, data_collator=collator, train_dataset=examples)
    loss_before = mean_loss(lm, examples, collator, int(batch_size))
    resume = any(checkpoints.glob("checkpoint-*"))
    if resume:
        log.info("resuming from the last checkpoint in %s", checkpoints)
    trainer.train(resume_from_checkpoint=True if resume else None)
    loss_after = mean_loss(trainer.model, examples, collator, int(batch_size))
    summary = {**settings, "data": str(data), "n_examples": len(examples), "loss_before": float(loss_before),
               "loss_after": float(loss_after)}
    _publish(out, trainer, tokenizer, summary, overwrite)
    shutil.rmtree(checkpoints, ignore_errors=True)
    log.info("wrote %s: training loss %.4f -> %.4f", out, loss_before, loss_after)
    return summary


def mean_loss(model, examples, collator, batch_size=8):
    """Mean next-token cross-entropy over every predicted (label != -100) token of the examples.

    Computed here rather than read from ``Trainer.evaluate``, whose loss divides each batch's summed loss
    by its label count before the shift (one token more per sequence than are predicted).
    """
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for first in range(0, len(examples), batch_size):
            batch = {k: v.to(device) for k, v in collator(examples[first:first + batch_size]).items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
            labels = batch["labels"][:, 1:]
            total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                                             labels.reshape(-1), ignore_index=-100, reduction="sum"))
            count += int((labels != -100).sum())
    model.train(was_training)
    return total / max(count, 1)


def _check_checkpoints(checkpoints, settings):
    """Record the settings beside the checkpoints; checkpoints of other settings are never resumed."""
    record = checkpoints / "finetune-settings.json"
    if record.is_file():
        found = json.loads(record.read_text())
        for key, value in settings.items():
            if found.get(key) != value:
                raise InputError(f"{checkpoints}: field '{key}' of the interrupted run was {found.get(key)!r}, this "
                                 f"run has {value!r}; delete {checkpoints} to start afresh.")
        return
    checkpoints.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(settings, indent=2))


def _cuda():
    import torch

    return torch.cuda.is_available()


def _digest(records):
    return hashlib.sha256(json.dumps(records, sort_keys=True, default=str).encode()).hexdigest()


def _publish(out, trainer, tokenizer, summary, overwrite):
    """Write the folder beside ``out`` and rename it over ``out`` only once it is complete."""
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        trainer.save_model(str(partial))
        tokenizer.save_pretrained(str(partial))
        (partial / "finetune.json").write_text(json.dumps(summary, indent=2))
        if out.exists() and overwrite:
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(partial, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m extractors.finetune",
                                     description="Fine-tune a causal LM (Trainer) on a text or multiple-choice "
                                                 "dataset; the checkpoint is read by encoding.words like any model.")
    parser.add_argument("--model", required=True, help="Hugging Face id or local folder of a causal LM")
    parser.add_argument("--data", required=True, help="JSON-lines file or datasets folder (save_to_disk)")
    parser.add_argument("--out", required=True, help="checkpoint folder to write")
    parser.add_argument("--task", default="auto", choices=TASKS, help="auto: 'text' records are causal LM")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-steps", type=int, default=200, help="checkpoint every N steps (resume point)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--overwrite", action="store_true")
    return parser


@command(build_parser)
def main(args):
    summary = finetune(args.model, args.data, args.out, args.task, args.epochs, args.lr, args.batch_size,
                       args.max_length, args.seed, args.save_steps, args.device, args.overwrite)
    print(f"wrote {args.out}: loss on the training data {summary['loss_before']:.4f} -> {summary['loss_after']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
