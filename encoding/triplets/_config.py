"""The settings of ``python -m encoding.triplets``' commands as schema sections (``encoding._schema``' style).

Each command's flags are defined once here, with their type, default, range and meaning; the command line
(argparse) takes its defaults and help from them, and every parsed value passes :func:`check_flags`, so a
bad value is the same one sentence as a bad key of a config file: "<command>: field '--<flag>' expected
<expected>, found <value>.".
"""
from typing import Annotated, Literal, Optional

from pydantic import StrictBool, StrictInt, StrictStr

from ..config import Count, Number, Positive, Section, between, check_section, setting
from ._estimator import DEFAULT_LAMBDAS

JUDGES = ("auto", "similarity", "chat")
DTYPES = ("auto", "float32", "bfloat16", "float16")


class Collect(Section):
    """``collect``: judge triplets with a model into ``<out>/triplets.h5``."""
    items: StrictStr = setting(..., "TSV/CSV with a 'name' column (optional 'label', 'image'), or one name per line",
                               "a file")
    model: StrictStr = setting(..., "minilm (the offline MiniLM similarity judge), a registry name, a local model "
                                    "folder or a cached Hub id", "a model")
    out: StrictStr = setting(..., "collection folder", "a folder")
    n_triplets: Optional[Positive] = setting(None, "triplets drawn uniformly with --seed", "a whole number >= 1")
    triplets: Optional[StrictStr] = setting(None, "a triplet file instead: three item names per line (tab or comma)",
                                            "a file")
    images: Optional[StrictStr] = setting(None, "folder of item images: the MLLM sees the three images", "a folder")
    judge: Literal[JUDGES] = setting("auto", "auto, similarity, chat (auto: by the model)",
                                     f"one of {', '.join(JUDGES)}")
    family: Optional[StrictStr] = setting(None, "adapter family of a local MLLM folder (see extractors.run --list)",
                                          "a family name")
    prompt_file: Optional[StrictStr] = setting(None, "YAML with 'prompt' and 'answers' (default: the built-in "
                                                     "prompt)", "a file")
    test_fraction: Annotated[Number, between(0, 1, closed_low=True)] = setting(
        0.1, "share held out for evaluate", "a share in [0, 1)")
    repeats: Optional[Count] = setting(None, "test triplets shown again in another order (default 1000)",
                                       "a whole number >= 0")
    seed: StrictInt = setting(0, "seed of the drawn triplets and the split", "a whole number")
    batch_size: Optional[Positive] = setting(None, "triplets per forward pass (8 for chat models)",
                                             "a whole number >= 1")
    layer: StrictInt = setting(-1, "similarity judge: hidden state used (-1 = last)", "a layer index")
    dtype: Literal[DTYPES] = setting("auto", "auto (bfloat16 on GPU), float32, bfloat16, float16",
                                     f"one of {', '.join(DTYPES)}")
    device: Optional[StrictStr] = setting(None, "cpu, cuda, cuda:1 (default: accelerate's device for this process)",
                                          "a device name")
    trust_remote_code: StrictBool = setting(False, "run a model's own code", "true or false")
    quiet: StrictBool = setting(False, "only warnings and errors", "true or false")


class Fit(Section):
    """``fit``: a SPoSE embedding on a collection's training triplets."""
    collection: StrictStr = setting(..., "collection folder (or its triplets.h5), or a triplet table (TSV/CSV with "
                                         "item_1, item_2, item_3, odd and optional split) with --items", "a folder")
    items: Optional[StrictStr] = setting(None, "items file of a triplet table (the names it uses, in embedding "
                                               "order)", "a file")
    out: StrictStr = setting(..., "output folder", "a folder")
    # the ranges of the fit's numbers are checked by the fit (``_fit.check_settings``), whose sentence also names
    # the triplet table
    dims: StrictInt = setting(100, "initial dimensions (pruned as their weight vanishes)", "a whole number")
    lambdas: Optional[list[Number]] = setting(
        None, f"sparsity weights tried, chosen on held-out triplets ({','.join(map(str, DEFAULT_LAMBDAS))})",
        "a comma list of numbers")
    seeds: StrictInt = setting(5, "fits per lambda from different starts", "a whole number")
    epochs: StrictInt = setting(500, "passes over the training triplets", "a whole number")
    batch_size: StrictInt = setting(100, "triplets per gradient step", "a whole number")
    lr: Number = setting(0.001, "learning rate", "a number")
    validation_fraction: Number = setting(0.1, "share held out to choose lambda", "a number")
    device: StrictStr = setting("cpu", "cpu, cuda, ...", "a device name")
    seed: StrictInt = setting(0, "seed of the starts and the validation split", "a whole number")
    overwrite: StrictBool = setting(False, "replace an existing output folder", "true or false")
    quiet: StrictBool = setting(False, "only warnings and errors", "true or false")


class Evaluate(Section):
    """``evaluate``: held-out accuracy beside the agreement between repeats, stability, RSA."""
    fit: StrictStr = setting(..., "a fit output folder", "a folder")
    heldout: Optional[StrictStr] = setting(None, "collection folder (its test split) or <folder>/test, /train or /all, "
                                                 "or a triplet table in the fit's item names (its test rows, or all)",
                                           "a folder or a file")
    reference: Optional[StrictStr] = setting(None, "reference embedding (TSV/CSV/HDF5) or similarity matrix for RSA",
                                             "a file")
    reference_similarity: Literal["dot", "spose"] = setting("dot", "how the reference embedding becomes "
                                                                   "similarities", "dot or spose")
    permutations: Count = setting(1000, "permutations of the RSA", "a whole number >= 0")
    bootstrap: Count = setting(1000, "bootstrap samples of the intervals", "a whole number >= 0")
    out: Optional[StrictStr] = setting(None, "output folder (default <fit>/evaluation)", "a folder")
    overwrite: StrictBool = setting(False, "replace an existing output folder", "true or false")
    quiet: StrictBool = setting(False, "only warnings and errors", "true or false")


COMMANDS = {"collect": Collect, "fit": Fit, "evaluate": Evaluate}


def check_flags(command, values):
    """A command's parsed flags against its section: InputError naming the command and the flag.

    Parameters
    ----------
    command : str
        collect, fit or evaluate.
    values : mapping
        The parsed flags by their argparse names (``n_triplets``); other keys (``command``) are left out.
    """
    section = COMMANDS[command]
    check_section({k: v for k, v in values.items() if k in section.model_fields}, section,
                  f"python -m encoding.triplets {command}", flags=True)
