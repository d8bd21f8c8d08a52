"""Object concepts from triplet odd-one-out judgments: judgments from a model, SPoSE embeddings, evaluation.

Private modules hold one idea each, re-exported here:

- ``_items``: the items judged (names, the words the judge reads, images);
- ``_sampling``: which triplets (uniform with a seed, or a file), the test split, the repeated subset;
- ``_judges``: what scores the three answers (an encoder's similarity, or a chat (M)LLM's log-probabilities);
- ``_store`` and ``_collect``: the resumable, crash-safe judgments store and ``collect``;
- ``_table``: judgments made elsewhere (people, another model) as a plain table, read like a store;
- ``_spose``: the SPoSE choice model and its optimisation (arrays in, arrays out);
- ``_estimator``: :class:`SPoSE`, lambda chosen on held-out triplets, several seeds, reproducibility;
- ``_similarity``: SPoSE's predicted similarity, dimension matching and reproducibility;
- ``_fit``, ``_evaluate``, ``_figures``: the ``fit`` and ``evaluate`` commands and their outputs.

Command line: ``python -m encoding.triplets collect|fit|evaluate`` (see ``__main__.py``).
"""
from ._collect import collect_judgments
from ._estimator import DEFAULT_LAMBDAS, SPoSE
from ._evaluate import evaluate_embedding, heldout_accuracy, reference_rsa, repeat_agreement
from ._figures import plot_top_items, top_items
from ._fit import fit_embedding, read_fit
from ._items import Items, read_items
from ._judges import ChatJudge, SimilarityJudge, cosine_similarity, load_prompt, make_judge
from ._sampling import Plan, make_plan, read_triplet_file, sample_triplets
from ._similarity import best_match_correlations, dimension_reproducibility, spose_similarity
from ._spose import choice_accuracy, cross_entropy, fit_spose, odd_last, odd_one_out_probabilities, prune
from ._store import Judgments, read_judgments
from ._table import TableJudgments, open_judgments, read_triplet_table

__all__ = [
    "ChatJudge", "DEFAULT_LAMBDAS", "Items", "Judgments", "Plan", "SPoSE", "SimilarityJudge", "TableJudgments",
    "best_match_correlations", "choice_accuracy", "collect_judgments", "cosine_similarity", "cross_entropy",
    "dimension_reproducibility", "evaluate_embedding", "fit_embedding", "fit_spose", "heldout_accuracy",
    "load_prompt", "make_judge", "make_plan", "odd_last", "odd_one_out_probabilities", "open_judgments",
    "plot_top_items", "prune", "read_fit", "read_items", "read_judgments", "read_triplet_file", "read_triplet_table",
    "reference_rsa", "repeat_agreement", "sample_triplets", "spose_similarity", "top_items",
]
