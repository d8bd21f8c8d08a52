"""The run config as a typed schema (pydantic): every key, its type, default and meaning, defined once.

``encoding.config`` builds ``DEFAULTS`` from it and checks every config (a YAML file or a mapping) against
it; :func:`render_config_reference` writes the README's config reference from it. A key that does not
exist is refused by name (``extra="forbid"``); a value of the wrong type or range becomes one sentence,
"<file>: field '<key>' expected <expected>, found <value>.", with the ``expected`` text of its field.
"""
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

CEILING_METHODS = ("auto", "repeat", "split_half", "cross_subject", "none")
BACKENDS = ("numpy", "torch", "torch_cuda", "cupy")


def _at_least(low):
    def check(value):
        if value is not None and value < low:
            raise ValueError(f"below {low}")
        return value
    return AfterValidator(check)


def _between(low, high, closed_low=False):
    def check(value):
        if not ((low <= value if closed_low else low < value) and value < high):
            raise ValueError("out of range")
        return value
    return AfterValidator(check)


Number = Union[StrictInt, StrictFloat]
Count = Annotated[StrictInt, _at_least(0)]
Positive = Annotated[StrictInt, _at_least(1)]
Names = Union[StrictStr, list[Union[StrictStr, StrictInt]]]


def _field(default, description, expected=None, **kwargs):
    extra = {"expected": expected} if expected else None
    return Field(default, description=description, json_schema_extra=extra, **kwargs)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Trim(_Section):
    start: Count = _field(0, "TRs dropped at the start of every run (fMRI and features alike)",
                          "a whole number of TRs >= 0")
    end: Count = _field(0, "TRs dropped at the end of every run", "a whole number of TRs >= 0")


class Rois(_Section):
    atlas: Union[StrictStr, dict[str, StrictStr]] = _field(
        "auto", "`auto` (the space's built-in atlas), a built-in name (glasser_groups, glasser, yeo7, yeo17, "
                "cole_anticevic, cole_anticevic_parcels, seitzman2018, seitzman2018_spheres), `parcels`, a label "
                "file (.annot, .label.gii, .dlabel.nii, NIfTI), a {left, right} pair, or a YAML/JSON/CSV/TSV file "
                "grouping targets (parcels) into ROIs or networks",
        "a name, a file or a {left, right} pair of files")
    lut: Optional[StrictStr] = _field(None, "names of a NIfTI label volume's labels (TSV index/name or a "
                                            "FreeSurfer LUT)", "a file")
    names: Optional[Names] = _field(None, "names of the parcels in target order: a list or a file (one per line, "
                                          "a Schaefer/FSL colour table, a TSV/CSV with a name column)",
                                    "a list of names or a file")
    networks: Optional[StrictStr] = _field(None, "a parcel -> network file (YAML/JSON/CSV/TSV) that groups the "
                                                 "ROIs into networks in heatmaps and terminal summaries", "a file")
    parcellation: Optional[Union[StrictStr, list[StrictStr]]] = _field(
        None, "the label image the parcels come from (a .dlabel.nii, a left/right .annot or .label.gii pair, or "
              "a NIfTI label volume; area k is parcel k): parcel maps are also written painted on it",
        "a file or a [left, right] pair")
    levels: Optional[Union[StrictStr, dict[str, Number]]] = _field(
        None, "ROI -> level of the sensory-to-association ordering for the hierarchy test (or a YAML file)",
        "a mapping of ROI to level or a file")


class NoiseCeiling(_Section):
    method: Literal[CEILING_METHODS] = _field(
        "auto", "auto (repeats, else across subjects), repeat, split_half, cross_subject or none",
        f"one of {', '.join(CEILING_METHODS)}")
    extrapolation: Literal["spearman_brown", "exponential"] = _field(
        "spearman_brown", "cross-subject ceiling: extrapolation to infinitely many subjects",
        "spearman_brown or exponential")
    n_bootstrap: Positive = _field(100, "cross-subject ceiling: bootstrap resamples of subject subsets",
                                   "a whole number >= 1")
    max_subsets: Positive = _field(20, "cross-subject ceiling: subsets drawn per subset size", "a whole number >= 1")


class Extraction(_Section):
    """Settings of ``extractors.run.ensure_features``; their values are checked there."""
    tr: Any = _field(None, "seconds per clip (default: the first run's tr)")
    family: Any = _field(None, "registry family of a local model folder")
    frames: Any = _field(None, "frames per clip (default: the model's)")
    window: Any = _field(None, "seconds of movie per clip (default: the TR)")
    align: Any = _field(None, "end, start or center: where the window sits relative to its TR")
    pooling: Any = _field(None, "generated_mean, prompt_mean or last_token")
    max_new_tokens: Any = _field(None, "tokens generated per clip")
    dtype: Any = _field(None, "auto, float32, bfloat16 or float16")
    device: Any = _field(None, "cpu, cuda, ...")
    trust_remote_code: Any = _field(None, "run a model's own code (Kimi-Audio)")
    partial: Any = _field(None, "drop or keep a last partial TR")
    batch_instructions: Any = _field(None, "decode all instructions of a clip as one batch")
    video_max_pixels: Any = _field(None, "per-frame pixel cap of the Qwen families")


class Transcript(_Section):
    """Features stores built from a word table (``extractors.transcript``) before fitting."""
    words: Optional[StrictStr] = _field(None, "word table (TSV/CSV: onset, offset or duration, word, optional run) "
                                              "that the stores of `word_rate`, `minilm` and language models in "
                                              "`models` are built from", "a file")
    onset_offset: Number = _field(0, "seconds added to every onset so that 0 is the first kept volume of the run",
                                  "a number of seconds")
    run: StrictStr = _field("run-1", "the stimulus run of a word table without a `run` column", "a run name")
    context: StrictStr = _field("words:20", "how each word is read: `words:N` (its N preceding words) or "
                                            "`sentences:N`", "UNIT:SIZE such as words:20")
    pooling: Literal["last_token", "token_mean"] = _field("last_token", "a word's vector: its last token's state "
                                                                         "or the mean over its tokens",
                                                          "last_token or token_mean")
    batch_size: Positive = _field(16, "contexts per forward pass", "a whole number >= 1")
    tables: dict[str, StrictStr] = _field({}, "model name -> a per-TR table (a row per TR, e.g. a dataset's "
                                              "sound-power regressor) stored as that model's one layer",
                                          "a mapping of model name to file")


class LayerWeights(_Section):
    """Settings of the layer-weights analysis (``encoding.layer_weights``)."""
    bands: Optional[Annotated[StrictInt, _at_least(2)]] = _field(
        None, "null: one band per layer; N: the layers in N contiguous groups of near-equal size",
        "a whole number >= 2 or null")
    search: Literal["pairs", "neighbours", "random"] = _field(
        "pairs", "pairs: each band alone, all equally and every pair of bands at `ratios` splits; neighbours: "
                 "adjacent pairs only; random: Dirichlet draws", "pairs, neighbours or random")
    ratios: Positive = _field(5, "weight splits per pair of bands, j / (ratios + 1)", "a whole number >= 1")
    n_iter: Count = _field(0, "Dirichlet draws (search random), or added to pairs and neighbours",
                           "a whole number >= 0")
    pca_components: Optional[Positive] = _field(None, "reduce each layer to this many principal components "
                                                      "(fitted on the training runs)", "a whole number >= 1 or null")


class EncodingConfig(_Section):
    """Every key of an ``encoding.run`` config, in the order the reference lists them."""
    name: Optional[StrictStr] = _field(None, "names the output folder when `out` is not given "
                                             "(default: the config file's name)", "a name")
    out: Optional[StrictStr] = _field(None, "output folder (default `results/<name>`)", "a folder")
    demo: Optional[dict[str, Any]] = _field(None, "settings of the embedded demo, generated first", "a mapping")
    cache_dir: Optional[StrictStr] = _field(None, "`{cache}` in paths (default $MLLM_ENCODING_CACHE or "
                                                  "~/.cache/mllm-encoding)", "a folder")
    features_dir: Optional[StrictStr] = _field(None, "folder of the features stores, one per model: "
                                                     "`<features_dir>/<model>.h5`", "a folder")
    models: Names = _field([], "models (stores) to fit: a list or a comma list", "a list of model names")
    stimuli: Optional[StrictStr] = _field(None, "movie files (a folder, one file per stimulus run): extract the "
                                                "features a store lacks first", "a folder")
    extraction: Extraction = _field({}, "settings of the feature extraction (extractors.run)")
    transcript: Transcript = _field(
        {"words": None, "onset_offset": 0, "run": "run-1", "context": "words:20", "pooling": "last_token",
         "batch_size": 16, "tables": {}},
        "build the stores of `models` from a word table (word_rate, minilm, a language model by Hub id or "
        "`model_paths` folder) or per-TR tables first")
    model_paths: dict[str, StrictStr] = _field({}, "model name -> local folder of its weights",
                                               "a mapping of model name to folder")
    instructions: Names = _field("caption", "an instruction name, a comma list, a list or `all`",
                                 "a name, a comma list or a list")
    instruction_files: Names = _field([], "YAML files of your own instructions (name: prompt)", "a list of files")
    layers: Union[StrictStr, StrictInt, list[Union[StrictInt, StrictStr]]] = _field(
        "all", "`all`, a list of layer indices or a comma list (0 = embedding output)", "'all' or layer indices")
    subjects: dict[str, Any] = _field({}, "subject -> {runs: [run, ...]}; a run is {path, tr, stimulus_run} "
                                          "(+ mask for NIfTI), {left, right, tr, stimulus_run} for GIFTI, "
                                          "{path, dataset, ...} for HDF5", "a mapping of subject to runs")
    runs: Any = _field(None, "a place for a YAML anchor that subjects reuse; not read otherwise")
    test_runs: Names = _field([], "stimulus runs held out for testing (only scored)", "a list of stimulus runs")
    segments: dict[str, Union[Annotated[StrictInt, _at_least(2)], list[list[StrictInt]]]] = _field(
        {}, "stimulus run -> N contiguous parts, or [[start, stop], ...] TR ranges (0-based, stop excluded): a "
            "long run cut into parts that CV and `test_runs` use like runs (part k of run-1 is `run-1:k`); TRs "
            "within the longest delay of a test part are left out of training",
        "a mapping of stimulus run to a number >= 2 or a list of [start, stop] TR ranges")
    cv_folds: Optional[Annotated[StrictInt, _at_least(2)]] = _field(
        None, "folds over the training stimuli (default: leave one stimulus out)", "a whole number >= 2 or null")
    delays: list[StrictInt] = _field([1, 2, 3, 4, 5], "FIR delays in TRs, applied within each run",
                                     "a list of whole numbers of TRs")
    # checked by encoding.config.parse_alphas, which also takes an array from Python
    alphas: Any = _field({"logspace": [-2, 6, 17]}, "ridge penalties searched per target: "
                                                   "{logspace: [start, stop, n]} or a list")
    trim: Trim = _field({"start": 0, "end": 0}, "TRs dropped from every run after the delays")
    detrend: StrictBool = _field(True, "linear detrend of each run's responses", "true or false")
    zscore: StrictBool = _field(True, "z-score each run's responses in time", "true or false")
    tr_tolerance: Count = _field(2, "feature rows vs fMRI TRs that may differ per run (trimmed from the end) "
                                    "before it is an error", "a whole number >= 0")
    rois: Rois = _field({"atlas": "auto"}, "the ROIs tables and heatmaps summarise")
    joint: list[dict[str, Any]] = _field([], "banded fits: [{name, bands: [{model, instruction, layer}, ...]}]",
                                         "a list of {name, bands}")
    banded_iterations: Positive = _field(50, "band-weight samples of the banded fits: random-search iterations, "
                                             "or with banded_search grid the weight ratios", "a whole number >= 1")
    banded_search: Literal["random", "grid"] = _field(
        "random", "random: himalaya's random search (Dirichlet samples); grid: two bands' weight ratio "
                  "log-spaced over 1e-3..1e3 plus each band alone", "random or grid")
    layer_weights: Union[StrictBool, LayerWeights] = _field(
        False, "one banded ridge over all layers of each model and instruction, each layer a band: the weight "
               "each layer gets per target and the weight-averaged depth. true, or {bands, search (pairs, "
               "neighbours, random), ratios, n_iter, pca_components} (defaults: one band per layer, pairs, 5, 0, "
               "none)", "true, false or a mapping with bands, search, ratios, n_iter, pca_components")
    backend: Literal[BACKENDS] = _field("numpy", "himalaya backend: numpy, torch, torch_cuda or cupy",
                                        f"one of {', '.join(BACKENDS)}")
    n_targets_batch: Optional[Positive] = _field(20000, "targets solved at once (an upper bound)",
                                                 "a whole number >= 1 or null")
    memory_gb: Annotated[Number, _between(0, float("inf"))] = _field(
        2.0, "working memory of the ridge solver beyond its inputs; sets targets per batch", "a number > 0")
    pca_components: Optional[Positive] = _field(None, "reduce each layer to this many principal components "
                                                      "(fitted on the training runs)", "a whole number >= 1 or null")
    flatmap: Union[StrictBool, StrictStr, list[StrictStr]] = _field(
        True, "true: the default maps; false: none; or a list of encoding.flatmap maps",
        "true, false or a list of maps")
    n_permutations: Count = _field(1000, "block permutations of each target's test r; 0 = no permutation test",
                                   "a whole number >= 0")
    permutation_block: Positive = _field(10, "TRs per permuted block (longer than the hemodynamic response)",
                                         "a whole number of TRs >= 1")
    permutation_tail: Literal["normal", "none"] = _field(
        "normal", "p beyond the count's resolution from a normal fit to the null; none: counts only",
        "normal or none")
    fdr_q: Annotated[Number, _between(0, 1)] = _field(0.05, "Benjamini-Hochberg level for 'significant'",
                                                      "a number in (0, 1)")
    ceiling_threshold: Annotated[Number, _between(0, 1, closed_low=True)] = _field(
        0.05, "normalized r only where the noise ceiling of r exceeds this", "a number in [0, 1)")
    noise_ceiling: NoiseCeiling = _field({"method": "auto", "extrapolation": "spearman_brown", "n_bootstrap": 100,
                                          "max_subsets": 20}, "noise ceiling settings (keys may be given in part)")
    n_bootstrap: Positive = _field(1000, "resamples of the layer-hierarchy intervals", "a whole number >= 1")
    seed: StrictInt = _field(0, "seed of permutations, bootstraps and subsets", "a whole number")
    save_models: StrictBool = _field(False, "keep every layer fit as an encoder (weights, alphas, delays, space) "
                                            "in `<out>/models/`, for python -m encoding.predict", "true or false")
    threads: Optional[Positive] = _field(None, "BLAS/torch threads per fit: null chooses (one for a small fit or "
                                               "below 4 cores, every core for a large one); Dask workers use one",
                                         "a whole number >= 1 or null")
    work_dir: Optional[StrictStr] = _field(None, "finished fits, kept for resuming (default `<out>.work` beside the "
                                                 "output folder)", "a folder")
    workers: Optional[Positive] = _field(None, "fit on a local Dask cluster of this many single-threaded worker "
                                               "processes", "a whole number >= 1 or null")
    scheduler: Optional[StrictStr] = _field(None, "fit on an existing Dask cluster at this address "
                                                  "(tcp://host:8786)", "an address")


def sections():
    """Nested sections: key -> model class (the keys whose own keys are checked)."""
    return {name: field.annotation for name, field in EncodingConfig.model_fields.items()
            if isinstance(field.annotation, type) and issubclass(field.annotation, _Section)}


def defaults():
    """Key -> default value, in schema order (``encoding.config.DEFAULTS``)."""
    return {name: _plain(field.default) for name, field in EncodingConfig.model_fields.items()}


def _plain(value):
    return {k: _plain(v) for k, v in value.items()} if isinstance(value, dict) else (
        list(value) if isinstance(value, list) else value)


def _section_of(annotation):
    """The section a field holds: its annotation when that is one, or the one section of a union (``layer_weights:
    true`` or a mapping), else the annotation."""
    if isinstance(annotation, type):
        return annotation
    members = [a for a in getattr(annotation, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
    return members[0] if len(members) == 1 else annotation


def expected(location):
    """The ``expected`` text of the field at ``location`` (a tuple of keys), or a generic one."""
    model, text = EncodingConfig, None
    for key in location:
        field = model.model_fields.get(key) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            break
        text = (field.json_schema_extra or {}).get("expected", text)
        model = _section_of(field.annotation)
    return text or "a valid value"


def field_path(location):
    """The config keys of a pydantic error location (union members and list indices dropped)."""
    model, keys = EncodingConfig, []
    for key in location:
        if isinstance(model, type) and key == model.__name__:   # the union member pydantic names in the location
            continue
        if not (isinstance(key, str) and isinstance(model, type) and issubclass(model, BaseModel)
                and key in model.model_fields):
            break
        keys.append(key)
        model = _section_of(model.model_fields[key].annotation)
    return tuple(keys)


def render_config_reference():
    """The README's config reference, from the schema: one Markdown table row per key (and nested key).

    Returns
    -------
    str
    """
    lines = ["| key | default | meaning |", "| --- | --- | --- |"]
    for name, field in EncodingConfig.model_fields.items():
        section = sections().get(name)
        if section is not None and name != "extraction":
            for sub, subfield in section.model_fields.items():
                lines.append(f"| `{name}.{sub}` | {_shown(subfield.default)} | {subfield.description} |")
            continue
        lines.append(f"| `{name}` | {_shown(field.default)} | {field.description} |")
    return "\n".join(lines) + "\n"


def _shown(value):
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict) and not value:
        return "`{}`"
    if isinstance(value, dict):
        return "`{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}`"
    return f"`{value}`"
