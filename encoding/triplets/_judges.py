"""Judges: what scores the three answers of a triplet odd-one-out question.

Every judge returns, per triplet, three scores (one per position: "this one is the odd one out"); the
choice is the position with the highest score, ties going to the first. Nothing is sampled and no free
text is parsed, so the same triplet always gets the same choice.

- :class:`SimilarityJudge` (an encoder, e.g. MiniLM, ``--model minilm``): the score of position ``k`` is the cosine similarity
  of the *other two* items' embeddings (the pair that stays together when ``k`` is left out). Item
  embeddings are the model's word embeddings in context (``extractors.words``).
- :class:`ChatJudge` (an instruction-tuned language model, or a multimodal one given the three images):
  the odd-one-out prompt goes through the model's chat template, and the score of position ``k`` is the
  log-probability of answer ``k`` (e.g. ``"1"``) as the model's reply, summed over its tokens. MLLMs load
  through the extractors' registry and adapters (``extractors/models``); text-only causal LMs through
  :class:`CausalLMAdapter`, the same chat machinery with a tokenizer for a processor.

Batches: a batch of triplets runs as one right-padded forward pass. Under causal attention a row's real
tokens never see the padding after them, so a triplet's scores equal its scores alone up to float
rounding; the collection fixes which triplets share a batch (by their index), so a resumed or sharded
run computes every batch exactly as an uninterrupted one.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from extractors.models import ChatAdapter, model_revision
from extractors.registry import MODELS, adapter_class, resolve_model
from extractors.words import DEFAULT_TEMPLATES, MINILM, load_text_model, model_source, word_embeddings
from features.errors import InputError

from ._items import load_image

PROMPTS_FILE = Path(__file__).with_name("prompts.yaml")
PLACEHOLDERS = ("{item_1}", "{item_2}", "{item_3}")
JUDGE_VERSION = 1   # bumped when a change here changes the scores written


def load_prompt(path=None, images=False) -> dict:
    """``{"name", "prompt", "answers"}``: the built-in prompt for names or images, or the one of a YAML file
    with ``prompt`` and ``answers`` (three different strings)."""
    if path is None:
        entry = yaml.safe_load(PROMPTS_FILE.read_text())["images" if images else "names"]
        name, where = ("images" if images else "names"), PROMPTS_FILE
    else:
        where = Path(path)
        if not where.is_file():
            raise InputError(f"{where}: prompt file not found.")
        entry, name = yaml.safe_load(where.read_text()), where.stem
        if not isinstance(entry, dict):
            raise InputError(f"{where}: expected a mapping with 'prompt' and 'answers'.")
    prompt, answers = entry.get("prompt"), entry.get("answers")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"{where}: field 'prompt' must be a non-empty text.")
    if not (isinstance(answers, list) and len(answers) == 3 and all(isinstance(a, str) and a for a in answers)
            and len(set(answers)) == 3):
        raise InputError(f"{where}: field 'answers' must list three different answer strings, one per position.")
    missing = [p for p in PLACEHOLDERS if p not in prompt]
    if not images and missing:
        raise InputError(f"{where}: field 'prompt' must name the items with {', '.join(PLACEHOLDERS)}; "
                         f"{missing[0]} is missing.")
    return {"name": name, "prompt": prompt, "answers": list(answers)}


def fill_prompt(prompt, names) -> str:
    for placeholder, name in zip(PLACEHOLDERS, names):
        prompt = prompt.replace(placeholder, name)
    return prompt


class SimilarityJudge:
    """Odd one out by cosine similarity of an encoder's word embeddings (no prompt, no answers).

    Parameters
    ----------
    source : str or Path
        A local encoder folder (e.g. ``extractors.words.minilm_folder()``) or a cached Hub id.
    items : Items
    layer : int
        Which hidden state (0 = embedding output, -1 = the last layer).
    templates : sequence of str
        Sentences the names are placed in (``extractors.words``).
    """

    kind = "similarity"

    def __init__(self, source, items, layer=-1, templates=None, device="cpu"):
        if items.images is not None:
            raise InputError("--images: a similarity judge compares item names; images need a multimodal chat "
                             "model (--family).")
        self.source, self.items, self.layer, self.device = str(source), items, int(layer), device
        self.templates = list(templates or DEFAULT_TEMPLATES)

    def parameters(self) -> dict:
        return {"judge": self.kind, "model_id": self.source, "model_revision": model_revision(self.source),
                "layer": self.layer, "templates": self.templates,
                "scoring": "cosine similarity of the other two items' embeddings"}

    def load(self):
        tokenizer, model = load_text_model(self.source, self.device)
        embeddings = word_embeddings(self.items.words, tokenizer, model, self.templates)
        if not -len(embeddings) <= self.layer < len(embeddings):
            raise InputError(f"--layer: the model has hidden states 0..{len(embeddings) - 1}, found {self.layer}.")
        self.similarity = cosine_similarity(embeddings[self.layer])
        return self

    def provenance(self) -> dict:
        return {}

    def score(self, triplets) -> np.ndarray:
        """(n, 3) float32: column k is the similarity of the pair left when position k is the odd one out."""
        t = np.asarray(triplets)
        s = self.similarity
        return np.stack([s[t[:, 1], t[:, 2]], s[t[:, 0], t[:, 2]], s[t[:, 0], t[:, 1]]], 1).astype(np.float32)


def cosine_similarity(vectors) -> np.ndarray:
    """(n, n) cosine similarity of the rows of ``vectors`` (float64)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit @ unit.T


class CausalLMAdapter(ChatAdapter):
    """A text-only instruction-tuned LM (``AutoModelForCausalLM`` with its tokenizer's chat template),
    driven by the extractors' chat machinery: the tokenizer plays the processor."""

    model_class = "AutoModelForCausalLM"
    processor_class = "AutoTokenizer"
    media_content = ()

    def messages(self, prompt):
        return [{"role": "user", "content": prompt}]   # text models' templates take a plain string


class ChatJudge:
    """Odd one out by the log-probability of each answer under a chat (M)LLM.

    Parameters
    ----------
    adapter : ChatAdapter (not loaded)
        The family's adapter (``extractors.registry.adapter_class``) or a :class:`CausalLMAdapter`.
    items : Items
        With images, the three images are given in the user turn before the prompt.
    prompt : dict
        From :func:`load_prompt`.
    family : str
    """

    kind = "chat"

    def __init__(self, adapter, items, prompt, family):
        self.adapter, self.items, self.prompt, self.family = adapter, items, prompt, family
        self.with_images = items.images is not None
        # The user turn: three images (when given), then the question; set before load() renders the template.
        adapter.media_content = ({"type": "image"},) * 3 if self.with_images else ()

    def parameters(self) -> dict:
        return {"judge": self.kind, "model_id": self.adapter.source, "family": self.family,
                "model_revision": model_revision(self.adapter.source), "dtype": self.adapter.dtype_name,
                "prompt_name": self.prompt["name"], "prompt": self.prompt["prompt"], "answers": self.prompt["answers"],
                "images": self.with_images, "adapter_version": self.adapter.version,
                "scoring": "log-probability of each answer as the reply, summed over its tokens"}

    def load(self):
        self.adapter.load()
        self.adapter.tokenizer.padding_side = "right"
        if self.adapter.tokenizer.pad_token_id is None:
            raise InputError(f"--model {self.adapter.source}: its tokenizer has no padding token, which batches "
                             f"of triplets need.")
        return self

    def provenance(self) -> dict:
        """The prompt exactly as the model reads it (chat template applied, items as placeholders)."""
        return {"prompt_format": self.adapter.render(self.prompt["prompt"])}

    def score(self, triplets) -> np.ndarray:
        """(n, 3) float32 log-probabilities of the three answers, per triplet.

        When every answer is one token (the usual "1", "2", "3"), each triplet is one row and the three
        log-probabilities are read at its last position; otherwise each (triplet, answer) is a row with the
        answer appended, and its tokens' log-probabilities are summed.
        """
        import torch

        prompts = [self.adapter.render(fill_prompt(self.prompt["prompt"], [self.items.words[i] for i in t]))
                   for t in triplets]
        answers = [[self._answer_ids(p, a) for a in self.prompt["answers"]] for p in prompts]
        if all(len(ids) == 1 for row in answers for ids in row):
            log_probs = self._log_probs(prompts, triplets, [[]] * len(prompts))[:, 0]
            ids = torch.tensor([[ids[0] for ids in row] for row in answers], device=log_probs.device)
            return log_probs.gather(1, ids).cpu().numpy()
        texts = [p + a for p in prompts for a in self.prompt["answers"]]
        flat = [ids for row in answers for ids in row]
        log_probs = self._log_probs(texts, np.repeat(triplets, 3, 0), flat)
        device = log_probs.device
        scores = [float(log_probs[r, torch.arange(len(ids), device=device), torch.tensor(ids, device=device)].sum())
                  for r, ids in enumerate(flat)]
        return np.array(scores, np.float32).reshape(-1, 3)

    def _log_probs(self, texts, triplets, tails):
        """Next-token log-probabilities of each row at the positions that predict its last tokens.

        Parameters
        ----------
        texts : list of str
            One chat-formatted row each (run as one right-padded batch).
        triplets : int array of shape (n_rows, 3)
            Whose images go with each row (when the judge shows images).
        tails : list of lists of int
            The token ids each row ends with and that are scored; an empty list scores the token after the row.

        Returns
        -------
        tensor of shape (n_rows, max(1, longest tail), vocab), float32; row r's first ``len(tails[r])`` entries
        (or its first, for an empty tail) are the distributions of its tail tokens.
        """
        import torch

        kwargs = {}
        if self.with_images:
            kwargs["images"] = [[load_image(self.items.images[i]) for i in t] for t in triplets]
        inputs = self.adapter._to_device(dict(self.adapter.processor(text=texts, padding=True, return_tensors="pt",
                                                                     **kwargs)))
        lengths = inputs["attention_mask"].sum(1)
        for row, tail in enumerate(tails):
            end = int(lengths[row])
            if tail and inputs["input_ids"][row, end - len(tail):end].tolist() != list(tail):
                raise InputError(f"--model {self.adapter.source}: its processor tokenizes the answers differently "
                                 f"from its tokenizer ({texts[row][-40:]!r}).")
        n_tail = torch.tensor([len(tail) for tail in tails], device=lengths.device)
        # position p - 1 predicts token p; a short tail repeats its last position up to the longest
        steps = torch.arange(max(1, int(n_tail.max())), device=lengths.device)[None]
        positions = (lengths - 1 - n_tail)[:, None] + steps.clamp(max=(n_tail[:, None] - 1).clamp(min=0))
        with torch.inference_mode():
            logits = self.adapter.model(**inputs, use_cache=False, logits_to_keep=positions).logits
        if logits.shape[1] != positions.shape[1]:   # a family that ignores logits_to_keep
            logits = logits.take_along_dim(positions[..., None], 1)
        return torch.log_softmax(logits.float(), -1)

    def _answer_ids(self, prompt, answer):
        """The token ids of ``answer`` as a continuation of ``prompt`` (tokenized together, as the model reads it)."""
        tokenize = self.adapter._token_ids
        head, whole = tokenize(prompt), tokenize(prompt + answer)
        if whole[:len(head)] != head or len(whole) == len(head):
            raise InputError(f"--prompt-file: answer {answer!r} merges with the end of the chat prompt when "
                             f"tokenized; choose answers that start a new token (e.g. '1', '2', '3').")
        return whole[len(head):]


def architectures(source) -> list:
    """The ``architectures`` of a model's config.json (a folder, or a Hub id in the local cache)."""
    folder = Path(source)
    config = folder / "config.json" if folder.is_dir() else None
    if config is None:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(str(source), "config.json")
            config = Path(cached) if isinstance(cached, str) else None
        except Exception:  # noqa: BLE001 - an unreadable cache means "not found" here
            config = None
    if config is None or not config.is_file():
        raise InputError(f"--model {source}: no config.json found (neither a model folder nor a Hub id in the "
                         f"local cache).")
    return list(json.loads(config.read_text()).get("architectures") or [])


def make_judge(model, items, judge="auto", family=None, prompt_file=None, layer=-1, templates=None,
               dtype="float32", device="cpu", trust_remote_code=False):
    """The judge for ``--model`` (see the module docstring); ``judge="auto"`` picks by what the model is:
    ``minilm`` (the offline MiniLM-L6) -> similarity judge; a registry name or ``--family`` -> chat
    MLLM; a ``*ForCausalLM`` checkpoint -> chat LM; else an encoder -> similarity judge."""
    if judge not in ("auto", "similarity", "chat"):
        raise InputError(f"--judge: expected auto, similarity or chat, found '{judge}'.")
    if str(model).lower() == MINILM:
        if judge == "chat":
            raise InputError(f"--judge chat: --model {model} is a sentence encoder, which judges by similarity "
                             f"(--judge similarity or auto).")
        return SimilarityJudge(Path(model_source(model)), items, layer, templates, device)
    registered = bool(family) or str(model) in MODELS
    if not registered:
        names = architectures(model)
        causal = any(a.endswith("ForCausalLM") for a in names)
        if any(a.endswith("ForConditionalGeneration") for a in names) and not causal:
            raise InputError(f"--model {model}: a multimodal model ({', '.join(names)}) is judged through its "
                             f"adapter; give --family (see python -m extractors.run --list).")
        if judge == "chat" and not causal:
            raise InputError(f"--judge chat: {model} is no causal language model (its config.json names "
                             f"{', '.join(names) or 'no architecture'}); use --judge similarity for an encoder.")
        judge = ("chat" if causal else "similarity") if judge == "auto" else judge
    elif judge == "similarity":
        raise InputError(f"--judge similarity: {model} is a chat model of the registry; a similarity judge needs "
                         f"an encoder folder (e.g. MiniLM).")
    else:
        judge = "chat"
    if judge == "similarity":
        return SimilarityJudge(model, items, layer, templates, device)
    prompt = load_prompt(prompt_file, images=items.images is not None)
    if registered:
        spec = resolve_model(model, family)
        return ChatJudge(adapter_class(spec)(spec.source, dtype, device, trust_remote_code), items, prompt,
                         spec.family)
    if items.images is not None:
        raise InputError(f"--images: {model} is a text-only model; images need a multimodal family (--family).")
    return ChatJudge(CausalLMAdapter(str(model), dtype, device, trust_remote_code), items, prompt, "causal_lm")
