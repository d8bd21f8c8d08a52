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
POOLINGS = ("generated_mean", "prompt_mean", "last_token", "token_mean")  # extractors.extract.POOLINGS


def at_least(low):
    def check(value):
        if value is not None and value < low:
            raise ValueError(f"below {low}")
        return value
    return AfterValidator(check)


def between(low, high, closed_low=False, closed_high=False):
    def check(value):
        if not ((low <= value if closed_low else low < value) and (value <= high if closed_high else value < high)):
            raise ValueError("out of range")
        return value
    return AfterValidator(check)


Number = Union[StrictInt, StrictFloat]
Count = Annotated[StrictInt, at_least(0)]
Positive = Annotated[StrictInt, at_least(1)]
Names = Union[StrictStr, list[Union[StrictStr, StrictInt]]]
#: ``all``, a layer index, a comma list or a list of indices (the main run's, RSA's and the words study's)
Layers = Union[StrictStr, StrictInt, list[Union[StrictInt, StrictStr]]]


def setting(default, description, expected=None, **kwargs):
    extra = {"expected": expected} if expected else None
    return Field(default, description=description, json_schema_extra=extra, **kwargs)


class Section(BaseModel):
    """A group of config keys; the schema of a whole command's config is one too."""
    model_config = ConfigDict(extra="forbid")


class Trim(Section):
    start: Count = setting(0, "TRs dropped at the start of every run (fMRI and features alike)",
                          "a whole number of TRs >= 0")
    end: Count = setting(0, "TRs dropped at the end of every run", "a whole number of TRs >= 0")


class Rois(Section):
    atlas: Union[StrictStr, dict[str, StrictStr]] = setting(
        "auto", "`auto` (the space's built-in atlas), a built-in name (glasser_groups, glasser, yeo7, yeo17, "
                "cole_anticevic, cole_anticevic_parcels, seitzman2018, seitzman2018_spheres), `parcels`, a label "
                "file (.annot, .label.gii, .dlabel.nii, NIfTI), a {left, right} pair, or a YAML/JSON/CSV/TSV file "
                "grouping targets (parcels) into ROIs or networks",
        "a name, a file or a {left, right} pair of files")
    lut: Optional[StrictStr] = setting(
        None, "names of a NIfTI label volume's labels (TSV index/name or a FreeSurfer LUT)", "a file")
    names: Optional[Names] = setting(
        None, "names of the parcels in target order: a list or a file (one per line, a Schaefer/FSL colour table, "
              "a TSV/CSV with a name column)", "a list of names or a file")
    networks: Optional[StrictStr] = setting(
        None, "a parcel -> network file (YAML/JSON/CSV/TSV) that groups the ROIs into networks in heatmaps and "
              "terminal summaries", "a file")
    parcellation: Optional[Union[StrictStr, list[StrictStr]]] = setting(
        None, "the label image the parcels come from (a .dlabel.nii, a left/right .annot or .label.gii pair, or "
              "a NIfTI label volume; area k is parcel k): parcel maps are also written painted on it",
        "a file or a [left, right] pair")
    levels: Optional[Union[StrictStr, dict[str, Number]]] = setting(
        None, "ROI -> level of the sensory-to-association ordering for the hierarchy test (or a YAML file)",
        "a mapping of ROI to level or a file")


class NoiseCeiling(Section):
    method: Literal[CEILING_METHODS] = setting(
        "auto", "auto (repeats, else across subjects), repeat, split_half, cross_subject or none",
        f"one of {', '.join(CEILING_METHODS)}")
    extrapolation: Literal["spearman_brown", "exponential"] = setting(
        "spearman_brown", "cross-subject ceiling: extrapolation to infinitely many subjects",
        "spearman_brown or exponential")
    n_bootstrap: Positive = setting(100, "cross-subject ceiling: bootstrap resamples of subject subsets",
                                   "a whole number >= 1")
    max_subsets: Positive = setting(20, "cross-subject ceiling: subsets drawn per subset size", "a whole number >= 1")


class Extraction(Section):
    """Settings of ``extractors.run.ensure_features`` (``python -m extractors.run``'s flags); unset keys take the
    extractor's defaults, and whether a model can do a value (a pooling, a pixel cap) is checked there."""
    tr: Optional[Annotated[Number, between(0, float("inf"))]] = setting(
        None, "seconds per clip (default: the first run's tr)", "a positive number of seconds")
    family: Optional[StrictStr] = setting(None, "registry family of a local model folder", "a family name")
    frames: Optional[Positive] = setting(None, "frames per clip (default: the model's)", "a whole number >= 1")
    window: Optional[Annotated[Number, between(0, float("inf"))]] = setting(
        None, "seconds of movie per clip (default: the TR)", "a positive number of seconds")
    align: Optional[Literal["end", "start", "center"]] = setting(
        None, "where the window sits relative to its TR (default end)", "one of end, start, center")
    pooling: Optional[Literal[POOLINGS]] = setting(
        None, "a layer's vector per clip (default: the model's first pooling)", f"one of {', '.join(POOLINGS)}")
    max_new_tokens: Optional[Positive] = setting(None, "tokens generated per clip (default 32)", "a whole number >= 1")
    dtype: Optional[Literal["auto", "float32", "bfloat16", "float16"]] = setting(
        None, "weights' dtype (default auto: bfloat16 on a GPU, float32 on the CPU)",
        "one of auto, float32, bfloat16, float16")
    device: Optional[StrictStr] = setting(None, "cpu, cuda, cuda:1 (default: accelerate's device)", "a device name")
    trust_remote_code: Optional[StrictBool] = setting(None, "run a model's own code (Kimi-Audio)", "true or false")
    partial: Optional[Literal["drop", "keep"]] = setting(
        None, "whether a last partial TR gets a clip (default drop)", "drop or keep")
    batch_instructions: Optional[StrictBool] = setting(
        None, "decode all instructions of a clip as one batch (generated_mean only; recorded in the store)",
        "true or false")
    batch_clips: Optional[Union[Positive, Literal["auto"]]] = setting(
        None, "clips run as one batch, or `auto` (as many as the free memory holds); default 1, not recorded in "
              "the store", "a whole number >= 1 or auto")
    video_max_pixels: Optional[Positive] = setting(
        None, "per-frame pixel cap of the Qwen families (default: the model's reference budget)", "a whole number >= 1")


class Transcript(Section):
    """Features stores built from a word table (``extractors.transcript``) before fitting."""
    words: Optional[StrictStr] = setting(None, "word table (TSV/CSV: onset, offset or duration, word, optional run) "
                                              "that the stores of `word_rate`, `minilm` and language models in "
                                              "`models` are built from", "a file")
    onset_offset: Number = setting(0, "seconds added to every onset so that 0 is the first kept volume of the run",
                                  "a number of seconds")
    run: StrictStr = setting("run-1", "the stimulus run of a word table without a `run` column", "a run name")
    context: StrictStr = setting("words:20", "how each word is read: `words:N` (its N preceding words) or "
                                            "`sentences:N`", "UNIT:SIZE such as words:20")
    pooling: Literal["last_token", "token_mean"] = setting("last_token", "a word's vector: its last token's state "
                                                                         "or the mean over its tokens",
                                                          "last_token or token_mean")
    batch_size: Positive = setting(16, "contexts per forward pass", "a whole number >= 1")
    tables: dict[str, StrictStr] = setting({}, "model name -> a per-TR table (a row per TR, e.g. a dataset's "
                                              "sound-power regressor) stored as that model's one layer",
                                          "a mapping of model name to file")


class LayerWeights(Section):
    """Settings of the layer-weights analysis (``encoding.layer_weights``)."""
    bands: Optional[Annotated[StrictInt, at_least(2)]] = setting(
        None, "null: one band per layer; N: the layers in N contiguous groups of near-equal size",
        "a whole number >= 2 or null")
    search: Literal["pairs", "neighbours", "random"] = setting(
        "pairs", "pairs: each band alone, all equally and every pair of bands at `ratios` splits; neighbours: "
                 "adjacent pairs only; random: Dirichlet draws", "pairs, neighbours or random")
    ratios: Positive = setting(5, "weight splits per pair of bands, j / (ratios + 1)", "a whole number >= 1")
    n_iter: Count = setting(0, "Dirichlet draws (search random), or added to pairs and neighbours",
                           "a whole number >= 0")
    pca_components: Optional[Positive] = setting(None, "reduce each layer to this many principal components "
                                                      "(fitted on the training runs)", "a whole number >= 1 or null")


class EncodingConfig(Section):
    """Every key of an ``encoding.run`` config, in the order the reference lists them."""
    name: Optional[StrictStr] = setting(None, "names the output folder when `out` is not given "
                                             "(default: the config file's name)", "a name")
    out: Optional[StrictStr] = setting(None, "output folder (default `results/<name>`)", "a folder")
    demo: Optional[dict[str, Any]] = setting(None, "settings of the embedded demo, generated first", "a mapping")
    cache_dir: Optional[StrictStr] = setting(None, "`{cache}` in paths (default $MLLM_ENCODING_CACHE or "
                                                  "~/.cache/mllm-encoding)", "a folder")
    features_dir: Optional[StrictStr] = setting(None, "folder of the features stores, one per model: "
                                                     "`<features_dir>/<model>.h5`", "a folder")
    models: Names = setting([], "models (stores) to fit: a list or a comma list", "a list of model names")
    stimuli: Optional[StrictStr] = setting(None, "movie files (a folder, one file per stimulus run): extract the "
                                                "features a store lacks first", "a folder")
    extraction: Extraction = setting({}, "settings of the feature extraction (extractors.run)")
    transcript: Transcript = setting(
        {"words": None, "onset_offset": 0, "run": "run-1", "context": "words:20", "pooling": "last_token",
         "batch_size": 16, "tables": {}},
        "build the stores of `models` from a word table (word_rate, minilm, a language model by Hub id or "
        "`model_paths` folder) or per-TR tables first")
    model_paths: dict[str, StrictStr] = setting({}, "model name -> local folder of its weights",
                                               "a mapping of model name to folder")
    instructions: Names = setting("caption", "an instruction name, a comma list, a list or `all`",
                                 "a name, a comma list or a list")
    instruction_files: Names = setting([], "YAML files of your own instructions (name: prompt)", "a list of files")
    layers: Layers = setting(
        "all", "`all`, a list of layer indices or a comma list (0 = embedding output)", "'all' or layer indices")
    subjects: dict[str, Any] = setting({}, "subject -> {runs: [run, ...]}; a run is {path, tr, stimulus_run} "
                                          "(+ mask for NIfTI), {left, right, tr, stimulus_run} for GIFTI, "
                                          "{path, dataset, ...} for HDF5", "a mapping of subject to runs")
    runs: Any = setting(None, "a place for a YAML anchor that subjects reuse; not read otherwise")
    test_runs: Names = setting([], "stimulus runs held out for testing (only scored)", "a list of stimulus runs")
    segments: dict[str, Union[Annotated[StrictInt, at_least(2)], list[list[StrictInt]]]] = setting(
        {}, "stimulus run -> N contiguous parts, or [[start, stop], ...] TR ranges (0-based, stop excluded): a "
            "long run cut into parts that CV and `test_runs` use like runs (part k of run-1 is `run-1:k`); TRs "
            "within the longest delay of a test part are left out of training",
        "a mapping of stimulus run to a number >= 2 or a list of [start, stop] TR ranges")
    cv_folds: Optional[Annotated[StrictInt, at_least(2)]] = setting(
        None, "folds over the training stimuli (default: leave one stimulus out)", "a whole number >= 2 or null")
    delays: list[StrictInt] = setting([1, 2, 3, 4, 5], "FIR delays in TRs, applied within each run",
                                     "a list of whole numbers of TRs")
    # checked by encoding.config.parse_alphas, which also takes an array from Python
    alphas: Any = setting({"logspace": [-2, 6, 17]}, "ridge penalties searched per target: "
                                                   "{logspace: [start, stop, n]} or a list")
    trim: Trim = setting({"start": 0, "end": 0}, "TRs dropped from every run after the delays")
    detrend: StrictBool = setting(True, "linear detrend of each run's responses", "true or false")
    zscore: StrictBool = setting(True, "z-score each run's responses in time", "true or false")
    tr_tolerance: Count = setting(2, "feature rows vs fMRI TRs that may differ per run (trimmed from the end) "
                                    "before it is an error", "a whole number >= 0")
    rois: Rois = setting({"atlas": "auto"}, "the ROIs tables and heatmaps summarise")
    joint: list[dict[str, Any]] = setting([], "banded fits: [{name, bands: [{model, instruction, layer}, ...]}]",
                                         "a list of {name, bands}")
    banded_iterations: Positive = setting(50, "band-weight samples of the banded fits: random-search iterations, "
                                             "or with banded_search grid the weight ratios", "a whole number >= 1")
    banded_search: Literal["random", "grid"] = setting(
        "random", "random: himalaya's random search (Dirichlet samples); grid: two bands' weight ratio "
                  "log-spaced over 1e-3..1e3 plus each band alone", "random or grid")
    layer_weights: Union[StrictBool, LayerWeights] = setting(
        False, "one banded ridge over all layers of each model and instruction, each layer a band: the weight "
               "each layer gets per target and the weight-averaged depth. true, or {bands, search (pairs, "
               "neighbours, random), ratios, n_iter, pca_components} (defaults: one band per layer, pairs, 5, 0, "
               "none)", "true, false or a mapping with bands, search, ratios, n_iter, pca_components")
    backend: Literal[BACKENDS] = setting("numpy", "himalaya backend: numpy, torch, torch_cuda or cupy",
                                        f"one of {', '.join(BACKENDS)}")
    n_targets_batch: Optional[Positive] = setting(20000, "targets solved at once (an upper bound)",
                                                 "a whole number >= 1 or null")
    memory_gb: Annotated[Number, between(0, float("inf"))] = setting(
        2.0, "working memory of the ridge solver beyond its inputs; sets targets per batch", "a number > 0")
    pca_components: Optional[Positive] = setting(None, "reduce each layer to this many principal components "
                                                      "(fitted on the training runs)", "a whole number >= 1 or null")
    flatmap: Union[StrictBool, StrictStr, list[StrictStr]] = setting(
        True, "true: the default maps; false: none; or a list of encoding.flatmap maps",
        "true, false or a list of maps")
    n_permutations: Count = setting(1000, "block permutations of each target's test r; 0 = no permutation test",
                                   "a whole number >= 0")
    permutation_block: Positive = setting(10, "TRs per permuted block (longer than the hemodynamic response)",
                                         "a whole number of TRs >= 1")
    permutation_tail: Literal["normal", "none"] = setting(
        "normal", "p beyond the count's resolution from a normal fit to the null; none: counts only",
        "normal or none")
    fdr_q: Annotated[Number, between(0, 1)] = setting(0.05, "Benjamini-Hochberg level for 'significant'",
                                                      "a number in (0, 1)")
    ceiling_threshold: Annotated[Number, between(0, 1, closed_low=True)] = setting(
        0.05, "normalized r only where the noise ceiling of r exceeds this", "a number in [0, 1)")
    noise_ceiling: NoiseCeiling = setting({"method": "auto", "extrapolation": "spearman_brown", "n_bootstrap": 100,
                                          "max_subsets": 20}, "noise ceiling settings (keys may be given in part)")
    n_bootstrap: Positive = setting(1000, "resamples of the layer-hierarchy intervals", "a whole number >= 1")
    seed: StrictInt = setting(0, "seed of permutations, bootstraps and subsets", "a whole number")
    save_models: StrictBool = setting(False, "keep every layer fit as an encoder (weights, alphas, delays, space) "
                                            "in `<out>/models/`, for python -m encoding.predict", "true or false")
    threads: Optional[Positive] = setting(None, "BLAS/torch threads per fit: null chooses (one for a small fit or "
                                               "below 4 cores, every core for a large one); Dask workers use one",
                                         "a whole number >= 1 or null")
    work_dir: Optional[StrictStr] = setting(None, "finished fits, kept for resuming (default `<out>.work` beside the "
                                                 "output folder)", "a folder")
    workers: Optional[Positive] = setting(None, "fit on a local Dask cluster of this many single-threaded worker "
                                               "processes", "a whole number >= 1 or null")
    scheduler: Optional[StrictStr] = setting(None, "fit on an existing Dask cluster at this address "
                                                  "(tcp://host:8786)", "an address")


def sections(schema=EncodingConfig):
    """Nested sections of a schema: key -> section class (the keys whose own keys are checked)."""
    return {name: field.annotation for name, field in schema.model_fields.items()
            if isinstance(field.annotation, type) and issubclass(field.annotation, Section)}


def defaults(schema=EncodingConfig):
    """Key -> default value, in schema order (``encoding.config.DEFAULTS`` and the studies' DEFAULTS)."""
    return {name: _plain(field.default) for name, field in schema.model_fields.items()}


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


def expected(location, schema=EncodingConfig):
    """The ``expected`` text of the field at ``location`` (a tuple of keys), or a generic one."""
    model, text = schema, None
    for key in location:
        field = model.model_fields.get(key) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            break
        text = (field.json_schema_extra or {}).get("expected", text)
        model = _section_of(field.annotation)
    return text or "a valid value"


def field_path(location, schema=EncodingConfig):
    """The config keys of a pydantic error location (union members and list indices dropped)."""
    model, keys = schema, []
    for key in location:
        if isinstance(model, type) and key == model.__name__:   # the union member pydantic names in the location
            continue
        if not (isinstance(key, str) and isinstance(model, type) and issubclass(model, BaseModel)
                and key in model.model_fields):
            break
        keys.append(key)
        model = _section_of(model.model_fields[key].annotation)
    return tuple(keys)


def render_config_reference(schema=EncodingConfig, prefix=""):
    """A config reference for the README, from a schema: one Markdown table row per key (and nested key).

    Parameters
    ----------
    schema : Section class
        ``EncodingConfig`` (``encoding.run``), or a study's (``encoding.rsa``, ``encoding.words``,
        ``encoding.triplets``' commands).
    prefix : str
        Put before every key (``--`` for command-line flags).

    Returns
    -------
    str
    """
    lines = ["| key | default | meaning |", "| --- | --- | --- |"]
    for name, field in schema.model_fields.items():
        section = sections(schema).get(name)
        if section is not None:
            for sub, subfield in section.model_fields.items():
                lines.append(f"| `{prefix}{name}.{sub}` | {_shown(subfield.default)} | {subfield.description} |")
            continue
        key = name.replace("_", "-") if prefix == "--" else name
        lines.append(f"| `{prefix}{key}` | {_shown(field.default)} | {field.description} |")
    return "\n".join(lines) + "\n"


def _shown(value):
    if value is Ellipsis:
        return "required"
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict) and not value:
        return "`{}`"
    if isinstance(value, dict):
        return "`{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}`"
    return f"`{value}`"
