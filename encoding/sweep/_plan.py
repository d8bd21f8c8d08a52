"""The plan of a sweep: each subject's responses prepared once, and one spec per fit.

A subject's responses are loaded, aligned and preprocessed once and cached in the work folder, keyed
by the identity of its fMRI files (path, size, modification time), the preprocessing settings, the
feature rows per stimulus and the ROI definition; a rerun with the same key reads the cache and never
reloads a NIfTI file. Fits are planned in the order scores.h5 lists them: every (model, instruction,
layer), then the joint fits, then the single-band fits that only a variance partition needs.
"""
import logging
from dataclasses import dataclass
from pathlib import Path

from features.errors import InputError

from ..config import RUN_FILE_FIELDS, as_given
from ..design import load_subject, run_parts, split_runs
from ..fmri import run_shape
from ..layer_weights import band_layers, layer_weights_settings, weight_samples
from ..ridge.memory import banded_bytes, batch_for, held_bytes, per_target_bytes
from ..roi_sets import rois_for_subject
from ._units import FIT_SETTINGS, changed_inputs, code_versions, make_spec
from ._work import FIT_FORMAT, digest, file_identity, read_subject_cache, write_subject_cache

log = logging.getLogger(__name__)

#: the config's fields the planner reads (``encoding.config.fields``): what prepares the subjects (``design``,
#: ``roi_sets``), plans the fits and hashes their fingerprints; ``given`` holds the values as the config gave them
PLANNER_FIELDS = (*FIT_SETTINGS, "banded_iterations", "banded_search", "joint", "layer_weights", "segments",
                  "subjects", "rois", "detrend", "zscore", "tr_tolerance", "test_runs", "config_file", "given")


@dataclass
class Subject:
    """One subject's prepared data: SubjectData, ROIs, the cache file and its content hash (``stimuli``:
    the store run each entry reads, also known when a dry run has not loaded the data)."""
    data: object
    rois: dict
    dropped: list
    cache: Path
    content: str
    stimuli: list = None

    def __post_init__(self):
        if self.stimuli is None:     # the store runs its fits read (a segment's is its whole run)
            self.stimuli = list(self.data.feature_runs)


def subject_key(config, subject, feature_rows):
    """What the cached responses of a subject depend on (module docstring). The run files (resolved by
    load_config) by identity; ``rois`` as the config gave it, and the identity of each of its files."""
    spec = config["subjects"][subject]
    runs = []
    for run in (spec or {}).get("runs") or []:
        entry = dict(run) if isinstance(run, dict) else {"entry": run}
        for field in RUN_FILE_FIELDS:
            if field in entry:
                path = Path(entry[field])
                entry[field] = file_identity(path) if path.is_file() else str(path)
        runs.append(entry)
    rois, resolved = as_given(config)["rois"], config["rois"]
    atlas = rois.get("atlas") if isinstance(rois, dict) else rois
    identities = {}
    for name, value in ((rois or {}).items() if isinstance(rois, dict) else [("atlas", atlas)]):
        path = resolved.get(name) if isinstance(resolved, dict) else None
        # a built-in atlas name stays a name, read from the config's folder before paths were resolved at load
        path = Path(path if isinstance(path, str) and Path(path).is_absolute()
                    else Path(config["config_file"]).parent / str(path))
        if isinstance(value, str) and path.is_file():
            identities[name] = file_identity(path)
    rows = {stimulus: [[int(n), tr] for _, n, tr in entries] for stimulus, entries in feature_rows.items()}
    settings = {k: config[k] for k in ("trim", "detrend", "zscore", "tr_tolerance", "test_runs")}
    if config.get("segments"):   # the gaps beside a test segment are as long as the longest delay
        settings.update(segments=config["segments"], delays=config["delays"])
    return digest({"runs": runs, "rows": rows, "rois": rois, "atlas_files": identities, "settings": settings,
                   "fit_format": FIT_FORMAT})


def prepare_subject(config, subject, feature_rows, work):
    """The subject's responses and ROIs, from the work folder's cache or loaded (and cached) now."""
    cache = work.subjects / f"{subject}-{subject_key(config, subject, feature_rows)}.h5"
    if cache.is_file():
        data, rois, dropped, content = read_subject_cache(cache)
        log.info("%s: preprocessed responses read from %s", subject, cache)
        return Subject(data, rois, dropped, cache, content)
    data = load_subject(config, subject, feature_rows)
    rois, dropped = rois_for_subject(config, data)
    if not rois:
        raise InputError(f"{config['config_file']}: field 'rois' leaves no ROI with a fitted target of {subject} "
                         f"({data.files[0]} and its runs); skipped: {', '.join(dropped)}.")
    content = write_subject_cache(cache, data, rois, dropped)
    log.info("%s: preprocessed responses cached in %s", subject, cache)
    return Subject(data, rois, dropped, cache, content)


def _band(stores, prompts, model, instruction, layer, stimuli, work, hashed=True):
    """One feature space of a fit; ``hashed=False`` (a dry run's subject never prepared, none of whose fits
    can be done) skips reading the layer for its content hash."""
    store = stores[model]
    return {"model": model, "store": str(store.path), "store_parameters": store.parameters,
            "instruction": instruction, "prompt": prompts[instruction], "layer": int(layer),
            "layer_hash": work.layer_hash(store, instruction, layer, sorted(set(stimuli))) if hashed else None}


def plan_fits(config, subjects, stores, prompts, instructions, layers, work):
    """Every fit of the sweep as a spec, in scores.h5 order.

    Returns
    -------
    list of dict (see ``_units.make_spec``)
    """
    code = code_versions(config["backend"])
    weighted = layer_weights_settings(config)
    specs = []
    for name, subject in subjects.items():
        hashed = subject.data is not None

        def band(model, instruction, layer):
            return _band(stores, prompts, model, instruction, layer, subject.stimuli, work, hashed)
        layer_keys = set()
        for model in stores:
            for instruction in instructions[model]:
                for layer in layers[model]:
                    key = f"{name}/{model}/{instruction}/layer_{layer}"
                    layer_keys.add(key)
                    specs.append(make_spec("layer", key, name, subject.cache, subject.content,
                                           [band(model, instruction, layer)], config, code))
                if weighted is not None and len(layers[model]) >= 2:
                    specs.append(make_spec("layer_weights", f"{name}/{model}/{instruction}/layer_weights", name,
                                           subject.cache, subject.content,
                                           [band(model, instruction, layer) for layer in layers[model]], config,
                                           code, layer_weights=_layer_weights(weighted, layers[model],
                                                                              stores[model], instruction)))
        band_only = {}
        for joint in config["joint"]:
            bands = _joint_bands(config, joint, stores)
            joint_name = joint.get("name") or "+".join(f"{b['model']}:{b['layer']}" for b in bands)
            specs.append(make_spec("joint", f"{name}/joint/{joint_name}", name, subject.cache, subject.content,
                                   [band(b["model"], b["instruction"], b["layer"]) for b in bands], config, code))
            for b in bands if len(bands) == 2 else []:
                key = f"{name}/{b['model']}/{b['instruction']}/layer_{int(b['layer'])}"
                if key not in layer_keys and key not in band_only:
                    band_only[key] = make_spec("layer", key, name, subject.cache, subject.content,
                                               [band(b["model"], b["instruction"], b["layer"])], config, code,
                                               band_only=True)
        specs += list(band_only.values())
    return specs


#: More band-weight samples than this in one layer-weights fit earn a warning (a sample costs about one layer fit).
LAYER_WEIGHT_SAMPLES_WARN = 400


def _layer_weights(search, layers, store, instruction):
    """A layer-weights fit's settings: the config's (``search``), the layers of each band and the store's layer
    count."""
    n_layers = max(store.layers(instruction, store.runs(instruction)[0])) + 1
    weights = {**search, "bands": band_layers(layers, search["bands"]), "n_layers": int(n_layers)}
    n_samples = _layer_weight_samples(weights)
    if n_samples > LAYER_WEIGHT_SAMPLES_WARN:   # pairs grow as bands squared: 33 layers are 2,674 samples
        log.warning("layer weights of %s: %d band-weight samples over %d bands, each about the cost of one layer "
                    "fit; 'layer_weights: {bands: 8}' (groups of adjacent layers, 149 samples) or "
                    "'{search: neighbours}' costs less.", instruction, n_samples, len(weights["bands"]))
    return weights


def _joint_bands(config, joint, stores):
    bands = joint.get("bands", []) if isinstance(joint, dict) else []
    if len(bands) < 2 or any(not {"model", "instruction", "layer"} <= set(b) for b in bands):
        raise InputError(f"{config['config_file']}: field 'joint' entries need a name and two or more bands, each "
                         f"with model, instruction and layer.")
    if config.get("banded_search", "random") == "grid" and len(bands) != 2:
        raise InputError(f"{config['config_file']}: field 'banded_search' is grid, which searches two bands' weight "
                         f"ratio; joint fit '{joint.get('name', '')}' has {len(bands)} bands (use random).")
    for band in bands:
        if band["model"] not in stores:
            raise InputError(f"{config['config_file']}: field 'joint.bands.model' names '{band['model']}', which is "
                             f"not among the models of this run ({', '.join(stores)}).")
    return bands


def stale_fits(specs, work):
    """Pending fits that the work folder holds for the same keys computed with other inputs, and why.

    Returns
    -------
    n_stale : int
        Pending fits whose key has a finished fit of another fingerprint.
    reasons : dict of input name -> number of those fits in which it changed
    """
    pending = [spec for spec in specs if not work.done(spec["fingerprint"])]
    if not pending:
        return 0, {}
    previous = work.specs_by_key()
    n_stale, reasons = 0, {}
    for spec in pending:
        if spec["key"] in previous:
            n_stale += 1
            for name in changed_inputs(previous[spec["key"]], spec):
                reasons[name] = reasons.get(name, 0) + 1
    return n_stale, dict(sorted(reasons.items()))


def report_changes(specs, work):
    """Log, once per changed input, why fits of the work folder are not reused for the same keys."""
    for name, count in stale_fits(specs, work)[1].items():
        log.warning("%s: %d fits were computed with another '%s'; they are not reused, those fits are computed "
                    "again", work.path, count, name)


def describe_plan(specs, work, estimate=None, backend="numpy"):
    """The dry run's table: fits per subject and model, how many are done, memory and time (``estimate``).

    ``backend``: the fits' himalaya backend. The cost model is calibrated on this machine's CPU, so for
    GPU backends the text says that the estimate is not theirs.

    Returns
    -------
    str
    """
    import pandas as pd

    rows = []
    for spec in specs:
        model = {"layer": spec["bands"][0]["model"], "joint": "joint",
                 "layer_weights": f"{spec['bands'][0]['model']} (layer weights)"}[spec["kind"]]
        row = {"subject": spec["subject"], "model": model, "fits": 1, "done": int(work.done(spec["fingerprint"]))}
        if estimate is not None:
            seconds, gigabytes = estimate(spec)
            row.update(cpu_seconds=0.0 if row["done"] else seconds, memory_gb=gigabytes)
        rows.append(row)
    table = pd.DataFrame(rows)
    aggregations = {"fits": "sum", "done": "sum"}
    if estimate is not None:
        aggregations.update(cpu_seconds="sum", memory_gb="max")
    summary = table.groupby(["subject", "model"], sort=False).agg(aggregations).reset_index()
    summary["pending"] = summary["fits"] - summary["done"]
    lines = [summary.to_string(index=False, float_format=lambda v: f"{v:,.1f}")]
    total, done = len(table), int(table["done"].sum())
    lines.append(f"\n{total} fits, {done} already done in {work.path}, {total - done} to compute.")
    n_stale, reasons = stale_fits(specs, work)
    if n_stale:
        why = ", ".join(f"'{name}' in {count}" for name, count in reasons.items())
        lines.append(f"{n_stale} of those were done before with other inputs and are computed again ({why}).")
    if estimate is not None:
        hours = table["cpu_seconds"].sum() / 3600
        lines.append(f"Estimated compute for the {total - done} fits left: {hours:,.2f} CPU core-hours on this "
                     f"machine (one fit per core; divide by the workers); the largest fit needs about "
                     f"{table['memory_gb'].max():.2f} GB.")
        if backend in ("torch_cuda", "cupy"):
            lines.append(f"The fits are set to run on the GPU (backend {backend}): this estimate is what one CPU core "
                         f"of this machine would take; the cost model has no GPU rates.")
    return "\n".join(lines)


def array_shapes(spec, shapes):
    """Sizes of one fit: training and test TRs, delayed features, targets, folds (for the cost model)."""
    data = shapes[spec["subject"]]
    n_features = sum(band["hidden"] for band in spec["shape_bands"]) * len(spec["settings"]["delays"])
    n_folds = spec["settings"]["cv_folds"] or len({data["stimulus_runs"][i] for i in data["train"]})
    weights = spec["settings"].get("layer_weights") if spec["kind"] == "layer_weights" else None
    if weights and weights.get("pca_components"):
        n_features = int(weights["pca_components"]) * len(spec["shape_bands"])
    samples = (_band_samples(spec["settings"]) if spec["kind"] == "joint" else
               _layer_weight_samples(weights) if weights else 0)
    return {"n_train": data["n_train"], "n_test": data["n_test"], "n_features": n_features,
            "n_targets": data["n_targets"], "n_folds": n_folds, "n_alphas": len(spec["settings"]["alphas"]),
            "n_permutations": spec["settings"]["n_permutations"] if spec["kind"] == "layer" else 0,
            "banded_iterations": samples, "n_bands": len(weights["bands"]) if weights else len(spec["shape_bands"]),
            "banded_search": spec["settings"].get("banded_search", "random"), "kernel_form": bool(weights)}


def _layer_weight_samples(weights):
    """Band-weight samples of a layer-weights fit (``encoding.layer_weights.weight_samples``)."""
    return len(weight_samples(len(weights["bands"]), weights["search"], weights["ratios"], weights["n_iter"]))


def _band_samples(fit):
    """Band-weight samples of a joint fit (its spec's settings): the grid adds the two single bands to its
    ratios."""
    iterations = fit.get("banded_iterations", 0)
    return iterations + 2 if fit.get("banded_search", "random") == "grid" else iterations


def subject_shapes(subject):
    """TRs and targets of a prepared subject, as :func:`array_shapes` reads them."""
    data = subject.data
    return {"n_train": int(sum(data.bold[i].shape[0] for i in data.train)),
            "n_test": int(sum(data.bold[i].shape[0] for i in data.test)),
            "n_targets": int(data.valid.sum()), "stimulus_runs": data.stimulus_runs, "train": data.train}


def header_shapes(config, subject, feature_rows):
    """TRs and targets of a subject read from file headers only (the dry run loads no data)."""
    spec = config["subjects"][subject]
    base = Path(config["config_file"]).resolve().parent
    lengths, n_targets, stimuli, store_runs = [], None, [], []
    for i, run in enumerate((spec or {}).get("runs") or []):
        n_trs, n_targets = run_shape(run, base)
        stimulus = str(run.get("stimulus_run"))
        rows = [n for _, n, _ in feature_rows.get(stimulus, [])]
        parts, _ = run_parts(config, stimulus, min([n_trs] + rows), run.get("path") or run.get("left"))
        for part, (start, stop) in parts:
            lengths.append(stop - start)
            stimuli.append(part)
            store_runs.append(stimulus)
    train, test = split_runs(config, subject, stimuli)
    return {"n_train": int(sum(lengths[i] for i in train)), "n_test": int(sum(lengths[i] for i in test)),
            "n_targets": int(n_targets), "stimulus_runs": stimuli, "store_runs": store_runs, "train": train}


def attach_hidden_sizes(specs, stores):
    """Each band's hidden size, read from the store's metadata, for the cost model."""
    for spec in specs:
        spec["shape_bands"] = []
        for band in spec["bands"]:
            store = stores[band["model"]]
            first = store.runs(band["instruction"])[0]
            spec["shape_bands"].append({"hidden": int(store.layer_shape(band["instruction"], first,
                                                                         band["layer"])[1])})
    return specs


def fit_working_set(shape, memory_gb, n_targets_batch=None):
    """What one fit's solver holds and how it batches the targets, as the solver itself sizes them.

    The kernel form holds the float64 kernels, one fold and the refit (``memory.held_bytes``); the primal
    form every fold's decomposition and the full one; a fast banded fit also each band's kernels
    (``memory.banded_bytes``). Targets then go in batches as the solver sizes them (``memory.batch_for``).

    Returns
    -------
    held, per_target : bytes
    batch : int, targets per batch
    """
    n_train, n_test, p, t = shape["n_train"], shape["n_test"], shape["n_features"], shape["n_targets"]
    n_folds, n_alphas = max(shape["n_folds"], 1), shape["n_alphas"]
    n_val = n_train // n_folds
    n_fold = n_train - n_val
    splits = [(range(n_fold), range(n_val))] * n_folds   # the sizes are what count
    if shape.get("banded_iterations") and (p > n_train or shape.get("kernel_form")
                                           or shape.get("banded_search") == "grid"):
        held, per_target = banded_bytes(shape.get("n_bands", 2), n_train, n_test, splits, n_alphas, 4)
    elif p > n_fold:
        held = held_bytes(n_train, n_test, splits, n_alphas, 4)
        per_target = per_target_bytes("kernel", n_train, n_test, n_fold, n_val, n_fold, n_folds, n_alphas, 4)
    else:   # per fold and the full fit: V (p, p), the coupling (p, p), A (n_val, p), and the test map
        held = 8 * (n_folds + 1) * p * (2 * p + n_val + n_test)
        per_target = per_target_bytes("primal", n_train, n_test, p, n_val, p, n_folds, n_alphas, 4)
    # the solver's own rule, without its warning once per fit of the plan
    return held, per_target, batch_for(held, per_target, float(memory_gb or 2.0), t, n_targets_batch, warn=False)


def fit_memory_gb(shape, memory_gb, n_targets_batch=None):
    """Memory one fit needs: its float32 design and responses, and its solver's working set
    (``fit_working_set``: what the solver holds and one batch of targets)."""
    n, p, t = shape["n_train"] + shape["n_test"], shape["n_features"], shape["n_targets"]
    held, per_target, batch = fit_working_set(shape, memory_gb, n_targets_batch)
    return (4 * n * (p + t) + held + batch * per_target) / 2 ** 30
