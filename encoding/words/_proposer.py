"""Proposers: a generative model reads two groups of words (in their sentences) and writes hypotheses
about what sets the first group apart, in the style of D5 (Zhong et al. 2022, "Describing differences
between text distributions with natural language": "Group A contains more words that ...").

Two kinds, both decoding greedily so the same prompt gives the same hypotheses:

- ``LocalProposer``: a Hugging Face causal LM (Hub id or local folder), run here with ``generate``;
- ``HTTPProposer``: an OpenAI-compatible ``/chat/completions`` endpoint the user runs (vLLM, Ollama,
  llama.cpp server), given by its URL and only used when the user names it. Nothing else is contacted.
"""
import json
import logging
import re
import urllib.error
import urllib.request

from extractors.hub import local_files_only
from extractors.words import is_local_source
from features.errors import InputError

log = logging.getLogger(__name__)

STEM = "Group A contains more words that"
PROMPT = """Two groups of words from a story follow, each word shown in its sentence.
{groups}

Group A:
{group_a}

Group B:
{group_b}

Compared with the words of group B, what is special about the words of group A? Write {n} different
hypotheses, one per line, each a short phrase that completes the sentence "{stem} ...", for example
"are about food" or "are names of people". Write only the phrases."""


GROUPS = {"errors": "Group A: words whose brain responses a language model predicts poorly.\n"
                     "Group B: words whose brain responses it predicts well.",
          "contrast": "Group A: words whose brain responses one language model predicts much better than another.\n"
                      "Group B: words whose brain responses the other model predicts as well or better."}


def proposer_prompt(group_a, group_b, n_hypotheses=10, groups="errors"):
    """The prompt for one proposal round.

    Parameters
    ----------
    group_a, group_b : list of (word, sentence)
    n_hypotheses : int
    groups : "errors" (one model's worst against best words) or "contrast" (where model A beats model B)

    Returns
    -------
    str
    """
    def lines(group):
        return "\n".join(f'- "{word}" in: {sentence}' for word, sentence in group)

    return PROMPT.format(groups=GROUPS[groups], group_a=lines(group_a), group_b=lines(group_b), n=n_hypotheses,
                         stem=STEM)


def parse_hypotheses(response, n_hypotheses=None):
    """Hypotheses from a proposer's answer: one per line, numbering, bullets, quotes and the stem removed.

    Returns
    -------
    list of str, in order, without duplicates (case-insensitive)
    """
    found, seen = [], set()
    for line in str(response).splitlines():
        text = re.sub(r"^\s*(?:[-*\u2022]|\d+[.):]|\(\d+\))\s*", "", line).strip().strip('"\u201c\u201d\'').strip()
        text = re.sub(rf"^{re.escape(STEM)}\s*", "", text, flags=re.IGNORECASE)
        text = re.sub(r"^(?:words )?that\s+", "", text, flags=re.IGNORECASE).rstrip(" .;,").strip()
        if len(text) < 3 or len(text) > 200 or not re.search(r"[A-Za-z]", text) or text.lower() in seen:
            continue
        seen.add(text.lower())
        found.append(text)
    return found[:n_hypotheses] if n_hypotheses else found


class LocalProposer:
    """A causal LM run here, greedy decoding (``do_sample=False``), chat template when it has one.

    Parameters
    ----------
    source : str
        Hugging Face id or local folder.
    device : str
    max_new_tokens : int
    """

    def __init__(self, source, device="cpu", max_new_tokens=200):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        local = is_local_source(source)
        cached = local or local_files_only(source, "--proposer")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=cached)
            self.model = AutoModelForCausalLM.from_pretrained(str(source), local_files_only=cached).to(device).eval()
        except OSError as err:
            where = "folder" if local else "Hugging Face id"
            raise InputError(f"--proposer {source}: cannot load it as a causal LM {where} "
                             f"({str(err).splitlines()[0]}).") from None
        self.source, self.device, self.max_new_tokens = str(source), device, int(max_new_tokens)

    def describe(self):
        return {"kind": "local", "model": self.source, "decoding": "greedy", "max_new_tokens": self.max_new_tokens}

    def propose(self, prompt):
        """The model's answer to the prompt (new tokens only, special tokens dropped)."""
        import torch

        if self.tokenizer.chat_template:
            ids = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                     return_tensors="pt", return_dict=True)["input_ids"]
        else:
            ids = self.tokenizer(prompt, return_tensors="pt")["input_ids"]
        limit = getattr(self.model.config, "max_position_embeddings", None) or getattr(self.model.config,
                                                                                        "n_positions", None)
        if limit and ids.shape[1] + self.max_new_tokens > limit:
            raise InputError(f"--proposer {self.source}: the prompt has {ids.shape[1]} tokens and "
                             f"{self.max_new_tokens} new ones are asked for, beyond the model's {limit} positions; "
                             f"lower diverge.prompt_k or diverge.max_new_tokens.")
        ids = ids.to(self.device)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.no_grad():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                      max_new_tokens=self.max_new_tokens, pad_token_id=pad)
        return self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


class HTTPProposer:
    """An OpenAI-compatible chat endpoint at the user's URL (``http://host:8000/v1``).

    Parameters
    ----------
    url : str
        The API base (``.../v1``) or the full ``.../chat/completions`` address.
    model : str
        The ``model`` field of the request (the name the server serves).
    timeout : float
        Seconds to wait for an answer.
    max_tokens : int
    seed : int
        Sent with temperature 0, for servers that honour it.
    """

    def __init__(self, url, model="default", timeout=120, max_tokens=200, seed=0):
        if not re.match(r"^https?://", str(url)):
            raise InputError(f"--proposer {url}: an endpoint address must start with http:// or https://.")
        url = str(url).rstrip("/")
        self.endpoint = url if url.endswith("/chat/completions") else url + "/chat/completions"
        self.model, self.timeout, self.max_tokens, self.seed = str(model), float(timeout), int(max_tokens), int(seed)

    def describe(self):
        return {"kind": "http", "endpoint": self.endpoint, "model": self.model, "temperature": 0,
                "max_tokens": self.max_tokens, "seed": self.seed}

    def request_body(self, prompt):
        return {"model": self.model, "messages": [{"role": "user", "content": prompt}], "temperature": 0,
                "max_tokens": self.max_tokens, "seed": self.seed}

    def propose(self, prompt):
        """The content of the endpoint's first choice."""
        request = urllib.request.Request(self.endpoint, data=json.dumps(self.request_body(prompt)).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read().decode("utf-8"))
            return str(answer["choices"][0]["message"]["content"])
        except urllib.error.HTTPError as err:
            reason = f"HTTP {err.code} {err.reason}"
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            reason = str(getattr(err, "reason", err)) or type(err).__name__
        except (ValueError, KeyError, IndexError, TypeError) as err:
            reason = f"not an OpenAI-compatible chat completion ({type(err).__name__}: {err})"
        raise InputError(f"--proposer {self.endpoint}: the endpoint did not answer with hypotheses ({reason}).")


def make_proposer(spec, settings, device="cpu", seed=0):
    """A proposer from ``--proposer``: an http(s) URL or a Hugging Face id / local folder; None: none."""
    if not spec:
        return None
    if re.match(r"^https?://", str(spec)):
        return HTTPProposer(spec, settings["proposer_model"], settings["proposer_timeout"],
                            settings["max_new_tokens"], seed)
    return LocalProposer(spec, device, settings["max_new_tokens"])
