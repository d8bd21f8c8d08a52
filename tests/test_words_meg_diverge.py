"""Divergence mining on simulated MEG where the words of one semantic class (emotions) are predicted badly:
the real MiniLM verifier ranks the true hypothesis first, significantly; proposers (a tiny random causal LM
run here, and an OpenAI-compatible endpoint served by a local stub) are deterministic and every prompt and
answer is stored; an endpoint that does not answer ends in one sentence with nothing lost."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from itertools import combinations

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from encoding.words import LocalProposer, hypothesis_validity, parse_hypotheses
from encoding.words.__main__ import main
from features.errors import InputError
from words_meg_study import HYPOTHESES, build_tiny_gpt2, one_torch_thread, write_study  # noqa: F401

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def minilm():
    from extractors.words import minilm_folder

    try:
        return minilm_folder()
    except InputError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("diverge")
    tiny = build_tiny_gpt2(folder / "tiny")
    build_tiny_gpt2(folder / "proposer", seed=3, n_positions=4096)
    settings = {"hypotheses": HYPOTHESES, "windows": [0.2, 0.3], "sensor_group": "effect_1", "k": 15,
                "n_rounds": 1, "prompt_k": 6, "max_new_tokens": 16, "n_permutations": 2000, "layer": 2}
    config, facts = write_study(folder, tiny, config_extra={"layers": [2], "diverge": settings})
    return folder, config, facts


def _with(config_path, tmp_path, **diverge):
    raw = yaml.safe_load(config_path.read_text())
    raw["diverge"].update(diverge)
    raw["out"] = str(tmp_path / "results")
    raw["work_dir"] = str(config_path.parent / "results.work")      # fits are shared, never recomputed
    for key in ("story", "features_dir"):
        raw[key] = str(config_path.parent / raw[key])
    raw["subjects"]["sub-01"] = {k: str(config_path.parent / v) for k, v in raw["subjects"]["sub-01"].items()}
    raw["models"] = {"tiny": str(config_path.parent / "tiny")}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_planted_divergence_the_true_hypothesis_ranks_first_significantly(study, minilm):
    folder, config, facts = study
    assert main(["diverge", "--config", str(config)]) == 0
    out = folder / "results-diverge"
    table = pd.read_csv(out / "hypotheses.csv")
    first = table.iloc[0]
    assert first["hypothesis"] == "are about emotions or feelings" and first["rank"] == 1
    assert first["p"] < 0.01 and first["q"] < 0.05 and first["rate_a"] > first["rate_b"]
    assert (table.iloc[1:]["q"] > 0.05).all()                 # no other candidate passes the FDR level
    groups = pd.read_csv(out / "groups.csv", keep_default_na=False)
    worst = groups[(groups["split"] == "validation") & (groups["group"] == "A")]
    assert np.mean([facts["classes"][i] == "emotions" for i in worst["word_index"]]) >= 0.8
    with h5py.File(out / "verifier.h5", "r") as handle:
        assert handle["scores"].shape == (len(HYPOTHESES), 30) and handle["holds"].dtype == bool
        assert json.loads(handle.attrs["verifier"])["kind"] == "embedding"
        # every verdict is stored: the validity follows from the stored holds and groups
        holds, in_a = handle["holds"][()], handle["group"].asstr()[()] == "A"
        position = [list(handle["hypotheses"].asstr()[()]).index(h) for h in table["hypothesis"]]
    np.testing.assert_allclose(holds[position][:, in_a].mean(1) - holds[position][:, ~in_a].mean(1),
                               table["validity"])


def test_validity_p_equals_the_exact_relabelling_test():
    rng = np.random.default_rng(0)
    holds = rng.random((3, 10)) < np.array([[0.8], [0.5], [0.2]])
    in_a = np.arange(10) < 5
    result = hypothesis_validity(holds, in_a, n_permutations=20000, seed=1)
    for h in range(3):
        observed = holds[h, in_a].mean() - holds[h, ~in_a].mean()
        null = [holds[h, list(a)].mean() - holds[h, [i for i in range(10) if i not in a]].mean()
                for a in combinations(range(10), 5)]
        exact = np.mean(np.array(null) >= observed - 1e-12)
        assert result["validity"][h] == pytest.approx(observed)
        assert result["p"][h] == pytest.approx(exact, abs=0.01)


def test_local_proposer_is_deterministic_and_every_prompt_is_stored(study, tmp_path, minilm):
    folder, config, _ = study
    path = _with(config, tmp_path)
    assert main(["diverge", "--config", str(path), "--proposer", str(folder / "proposer")]) == 0
    records = [json.loads(line) for line in (tmp_path / "results-diverge" / "proposer.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["proposer"]["decoding"] == "greedy"
    prompt = records[0]["prompt"]
    groups = pd.read_csv(tmp_path / "results-diverge" / "groups.csv", keep_default_na=False)
    shown = groups[(groups["split"] == "proposal") & (groups["group"] == "A")]
    assert sum(f'"{w}" in: {s}' in prompt for w, s in zip(shown["word"], shown["sentence"])) == 6
    again = LocalProposer(folder / "proposer", max_new_tokens=16)
    # the stored answer is what the model gives this prompt, every time
    assert again.propose(prompt) == again.propose(prompt) == records[0]["response"]


class _Endpoint(BaseHTTPRequestHandler):
    """An OpenAI-compatible /v1/chat/completions stub; ``delay`` seconds before answering."""
    requests, delay = [], 0.0
    answer = "1. are about emotions or feelings\n2. Group A contains more words that are about food\n- are animals"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.path, body))
        time.sleep(type(self).delay)
        payload = json.dumps({"id": "stub", "object": "chat.completion",
                              "choices": [{"index": 0, "message": {"role": "assistant", "content": self.answer}}]})
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload.encode())
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    _Endpoint.requests, _Endpoint.delay = [], 0.0
    server = HTTPServer(("127.0.0.1", 0), _Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_http_proposer_speaks_openai_chat_completions_to_the_users_endpoint(study, tmp_path, endpoint, minilm):
    _, config, _ = study
    path = _with(config, tmp_path, hypotheses=None)
    assert main(["diverge", "--config", str(path), "--proposer", endpoint, "--proposer-model", "served-model"]) == 0
    (route, body), = _Endpoint.requests
    assert route == "/v1/chat/completions"
    assert body["model"] == "served-model" and body["temperature"] == 0
    record = json.loads((tmp_path / "results-diverge" / "proposer.jsonl").read_text())
    assert body["messages"] == [{"role": "user", "content": record["prompt"]}]
    assert record["response"] == _Endpoint.answer and record["proposer"]["endpoint"] == endpoint + "/chat/completions"
    table = pd.read_csv(tmp_path / "results-diverge" / "hypotheses.csv")
    assert sorted(table["hypothesis"]) == ["are about emotions or feelings", "are about food", "are animals"]
    assert (table["source"] == "proposer").all()
    assert table.iloc[0]["hypothesis"] == "are about emotions or feelings"


def test_an_endpoint_that_does_not_answer_is_one_sentence_and_nothing_is_lost(study, tmp_path, endpoint, capsys):
    folder, config, _ = study
    _Endpoint.delay = 1.0
    path = _with(config, tmp_path, proposer_timeout=0.3)
    fits = sorted((folder / "results.work" / "fits").iterdir())
    assert main(["diverge", "--config", str(path), "--proposer", endpoint]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the endpoint did not answer" in err and endpoint in err
    assert not (tmp_path / "results-diverge").exists() and not list(tmp_path.glob(".results*"))
    assert sorted((folder / "results.work" / "fits").iterdir()) == fits     # the finished fits are kept
    assert main(["diverge", "--config", str(path), "--proposer", "http://127.0.0.1:9/v1"]) == 2  # nothing listens
    assert "the endpoint did not answer" in capsys.readouterr().err


def test_parse_hypotheses_strips_numbering_bullets_and_the_stem():
    answer = ('1. are about emotions.\n2) "Group A contains more words that are names of people"\n'
              '* that describe movement\n- are about emotions\n\n...\n(3) words that are longer')
    assert parse_hypotheses(answer) == ["are about emotions", "are names of people", "describe movement",
                                        "are longer"]
    assert parse_hypotheses(answer, 2) == ["are about emotions", "are names of people"]


def test_zero_shot_verifier_gives_the_nli_models_entailment_probability(tmp_path):
    import torch
    from tokenizers import processors
    from transformers import BertConfig, BertForSequenceClassification

    from conftest_extractors import byte_tokenizer
    from encoding.words import ZeroShotVerifier

    tokenizer = byte_tokenizer(["[CLS]", "[SEP]", "[PAD]"], cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]")
    cls, sep = tokenizer.convert_tokens_to_ids("[CLS]"), tokenizer.convert_tokens_to_ids("[SEP]")
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    labels = {0: "contradiction", 1: "neutral", 2: "entailment"}      # the MNLI label order
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, pad_token_id=tokenizer.pad_token_id, id2label=labels,
                        label2id={v: k for k, v in labels.items()})
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path / "nli")
    tokenizer.save_pretrained(tmp_path / "nli")
    hypotheses, items = ["are about emotions", "are animals"], ["Harry felt such fear.", "Ron saw the owl."]
    scores, holds = ZeroShotVerifier(tmp_path / "nli").judge(hypotheses, items)
    for i, hypothesis in enumerate(hypotheses):
        for j, item in enumerate(items):
            # multi-label zero-shot: softmax over (contradiction, entailment) of the (item, hypothesis) pair
            encoded = tokenizer(item, ZeroShotVerifier.TEMPLATE.format(hypothesis), return_tensors="pt")
            with torch.no_grad():
                logits = model(**encoded).logits[0]
            assert scores[i, j] == pytest.approx(float(torch.softmax(logits[[0, 2]], 0)[1]), abs=1e-6)
    np.testing.assert_array_equal(holds, scores > 0.5)


def test_contrast_on_the_command_line_ranks_by_b_error_minus_a(study, tmp_path, minilm):
    from encoding.words._config import load_words_config
    from encoding.words._diverge import contrast_errors
    from encoding.words._run import prepare
    from encoding.words._study import fit_study

    folder, config, _ = study
    path = _with(config, tmp_path)
    assert main(["diverge", "--config", str(path), "--contrast", f"tiny,{folder / 'proposer'}"]) == 0
    table = pd.read_csv(tmp_path / "results-diverge" / "hypotheses.csv")
    assert {"contrast_holds_minus_not", "model_b", "layer_b"} <= set(table.columns)
    assert table["model"].iloc[0] == "tiny" and table["model_b"].iloc[0] == "proposer"
    groups = pd.read_csv(tmp_path / "results-diverge" / "groups.csv", keep_default_na=False)
    settings = load_words_config(path)
    settings["models"]["proposer"] = str(folder / "proposer")
    story, subjects = prepare(settings)
    fits, _ = fit_study(settings, story, subjects, ["tiny", "proposer"], progress=False)
    expected = contrast_errors(fits, subjects, ("tiny", "proposer"), {"tiny": 2, "proposer": 2}, [0.2, 0.3], "effect_1")
    np.testing.assert_allclose(groups.sort_values("word_index")["error"], expected, rtol=1e-5)
    assert main(["diverge", "--config", str(path), "--contrast", "tiny", "--overwrite"]) == 2


def test_the_verifier_reads_the_target_word_marked_and_an_lm_verifier_gives_yes_minus_no(study):
    import torch
    from transformers import GPT2LMHeadModel

    from encoding.words import LMVerifier, marked_sentence
    from encoding.words._diverge import make_verifier
    from encoding.words._study import Story
    from extractors.words_in_context import story_words

    text = "Harry felt such joy that night. Ron saw the owl again."
    spans, sentence_of = story_words(text)
    story = Story(text, "story.txt", [text[a:b] for a, b in spans], sentence_of, spans)
    assert story.marked_sentence(3) == "Harry felt such [joy] that night."
    assert story.marked_sentence(9) == "Ron saw the [owl] again." and story.marked_sentence(10).endswith("[again.]")
    assert marked_sentence("a b c", 2, 3) == "a [b] c"
    folder, _, _ = study
    verifier = make_verifier(f"lm:{folder / 'tiny'}")
    assert isinstance(verifier, LMVerifier)
    items = [story.marked_sentence(3), story.marked_sentence(7)]
    scores, holds = verifier.judge(["are about emotions"], items)
    # independent reference: the model's next-token log-probabilities, summed over each answer's bytes
    model = GPT2LMHeadModel.from_pretrained(folder / "tiny", local_files_only=True).eval()
    tokenizer = verifier.tokenizer
    for j, item in enumerate(items):
        prompt = f"Sentence: {item}\nQuestion: Is it true that the word in brackets are about emotions? Answer:"
        logp = []
        for answer in (" Yes", " No"):
            ids = tokenizer(prompt)["input_ids"] + tokenizer(answer, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                out = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
            n = len(tokenizer(answer, add_special_tokens=False)["input_ids"])
            logp.append(sum(out[len(ids) - n - 1 + t, ids[len(ids) - n + t]].item() for t in range(n)))
        assert scores[0, j] == pytest.approx(logp[0] - logp[1], abs=1e-6)
    assert (holds == (scores > 0)).all()
    with pytest.raises(InputError, match="lm:/nonexistent"):
        make_verifier("lm:/nonexistent")
