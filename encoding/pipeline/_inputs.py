"""The run's inputs: the output and work folders, the array backend, the features stores (extracted when
missing), the instructions and layers fitted, the subjects and the feature rows their caches are keyed on."""
import logging
from pathlib import Path

from himalaya.backend import set_backend

from extractors.run import ensure_features
from features.errors import InputError
from features.store import FeatureStore
from instructions import NO_INSTRUCTION, resolve

from ..config import parse_layers
from ..design import EmptySubjectError
from ..sweep import prepare_subject

log = logging.getLogger(__name__)


#: the config's fields :func:`extract_missing` reads (``encoding.config.fields``)
EXTRACTION_FIELDS = ("stimuli", "features_dir", "extraction", "model_paths", "models", "instructions",
                     "instruction_files", "subjects", "config_file")


def output_folder(out, name):
    """The config's ``out``, else ``results/<name>``."""
    return Path(out or Path("results") / name)


def work_folder(work_dir, out):
    """Where the sweep keeps its finished fits: ``work_dir``, else ``<out>.work`` beside the output folder."""
    if work_dir:
        return Path(work_dir)
    out = Path(out)
    return out.with_name(out.name + ".work")


def use_backend(name):
    if name not in ("numpy", "torch", "torch_cuda", "cupy"):
        raise InputError(f"--backend: unknown backend '{name}'; known: numpy, torch, torch_cuda, cupy.")
    try:
        set_backend(name, on_error="raise")
    except Exception as err:  # himalaya raises various errors for a missing torch or CUDA
        raise InputError(f"--backend: '{name}' is not usable on this machine ({err}).") from None


def extract_missing(config):
    """Extract the features each model's store lacks from the movies in ``stimuli`` (nothing if complete).

    One clip per TR of the fMRI runs (``extraction.tr``, else the first run's ``tr``); clips already in a
    store are skipped, and a store written with other settings is an error naming it. ``config``: the
    :data:`EXTRACTION_FIELDS` of the run's config.
    """
    stimuli, folder = Path(config["stimuli"]), Path(config["features_dir"])
    settings = dict(config["extraction"] or {})
    tr = settings.pop("tr", None) or _first_tr(config)
    paths = config["model_paths"] or {}
    for model in config["models"]:
        source = Path(paths[model]) if model in paths else model
        if model in paths and not source.is_dir():
            raise InputError(f"{config['config_file']}: field 'model_paths.{model}': no model folder {source}.")
        store = ensure_features(stimuli, tr, source, config["instructions"], folder, name=model,
                                instruction_files=config["instruction_files"], **settings)
        log.info("features store %s is complete", store)


def _first_tr(config):
    for subject in config["subjects"].values():
        for run in (subject or {}).get("runs") or []:
            if isinstance(run, dict) and run.get("tr"):
                return float(run["tr"])
    raise InputError(f"{config['config_file']}: field 'extraction.tr' is needed to extract features (no run "
                     f"gives its tr).")


def open_stores(features_dir, models, config_file):
    """One FeatureStore per requested model from ``<features_dir>/<model>.h5`` (the main run's and RSA's);
    ``config_file`` is named when ``models`` is empty."""
    folder = Path(features_dir)
    available = sorted(p.stem for p in folder.glob("*.h5")) if folder.is_dir() else []
    if not models:
        raise InputError(f"{config_file}: field 'models' is empty; stores in {folder}: "
                         f"{', '.join(available) or 'none'}.")
    unknown = [m for m in models if m not in available]
    if unknown:
        raise InputError(f"--model: unknown model '{unknown[0]}' (no features store {folder / unknown[0]}.h5); "
                         f"known: {', '.join(available) or 'none'}.")
    stores = {}
    for model in models:
        stores[model] = FeatureStore(folder / f"{model}.h5")
        log.info("read features store %s (%s)", stores[model].path, ", ".join(stores[model].instructions()))
    return stores


def choose_instructions(names, instruction_files, stores):
    """The prompts asked for, and per model the instructions fitted.

    A baseline's store (VideoMAE, AST, X-CLIP+CLAP: features computed without an instruction) holds
    only the no-instruction control ``none``; it is fitted under ``none`` whatever ``instructions`` asks.
    ``all`` fits each model under every instruction its store holds (the 13 video tasks for a video
    MLLM and the 5 audio tasks for an audio MLLM in one sweep), the no-instruction control excepted.

    Parameters
    ----------
    names : str or list of str
        The config's ``instructions``.
    instruction_files : list of str
        The config's ``instruction_files`` (resolved by ``load_config``).
    stores : dict model -> FeatureStore

    Returns
    -------
    prompts : dict name -> prompt text, every instruction fitted
    per_model : dict model -> list of instruction names
    """
    baselines = {m for m, s in stores.items() if s.instructions() == [NO_INSTRUCTION]}
    instructed = {m: s for m, s in stores.items() if m not in baselines}
    every = names == "all" or names == ["all"]
    if every:
        held = {m: [i for i in s.instructions() if i != NO_INSTRUCTION] for m, s in instructed.items()}
        names = sorted(set().union(*held.values())) if instructed else [NO_INSTRUCTION]
    # stores that are all baselines (no instruction) ask for no prompt
    prompts = resolve(names, extra_files=instruction_files) if instructed or not baselines else {}
    per_model = {m: ([NO_INSTRUCTION] if m in baselines else [i for i in prompts if not every or i in held[m]])
                 for m in stores}
    if baselines:
        log.info("baseline store(s) without instructions, fitted under '%s': %s", NO_INSTRUCTION,
                 ", ".join(sorted(baselines)))
        prompts = {**prompts, NO_INSTRUCTION: ""}
    for model, store in instructed.items():
        for name, prompt in prompts.items():
            if name not in per_model[model]:
                continue
            if name not in store.instructions():
                raise InputError(f"{store.path}: field '{name}' does not exist; this store holds "
                                 f"{', '.join(store.instructions())}.")
            if store.prompt(name) != prompt:
                raise InputError(f"{store.path}: field '{name}' was computed with the prompt "
                                 f"{store.prompt(name)!r}, not {prompt!r}.")
    return prompts, per_model


def choose_layers(requested, store, instructions, config_file):
    """The layers of ``store`` fitted: the config's ``layers`` among those its first instruction holds."""
    first = next(iter(instructions))
    return select_layers(requested, store.layers(first, store.runs(first)[0]), store.path, config_file)


def select_layers(requested, stored, store_file, config_file=None):
    """The layers a study fits among those a store holds (the main run, RSA and the words study alike).

    Parameters
    ----------
    requested : "all", None, int, list of int or str
        The config's or the command line's ``layers``: ``all`` (or None), layer indices, or ``"0,4,8"``.
    stored : list of int
        The layers the store holds, ascending.
    store_file : str or Path
        The store, named when it lacks a requested layer.
    config_file : str or Path, optional
        The config, named when ``requested`` is not a list of indices.

    Returns
    -------
    list of int
        ``stored`` for ``all``, else the requested layers in the order given.
    """
    wanted = parse_layers(requested, config_file)      # the loaders' parser: already a list from a loaded config
    if wanted == "all":
        return stored
    missing = [k for k in wanted if k not in stored]
    if missing:
        raise InputError(f"{store_file}: field 'layers' asks for layer {missing[0]}, stored layers are "
                         f"{stored[0]}..{stored[-1]}.")
    return wanted


def n_stored_layers(store, instructions):
    """Layers the store holds: depth is layer / (n - 1) whatever subset of layers is fitted."""
    first = next(iter(instructions))
    return max(store.layers(first, store.runs(first)[0])) + 1


def subject_names(config):
    if not config["subjects"]:
        raise InputError(f"{config['config_file']}: field 'subjects' is empty.")
    return list(config["subjects"])


def prepare_subjects(config, feature_rows, work):
    """Every subject's prepared responses, and subject -> sentence for those left out: a subject with nothing to
    fit (every target NaN or constant, such as time courses of zeros) is left out with its sentence logged, and
    stops the run when it is the only one."""
    subjects, excluded = {}, {}
    for name in subject_names(config):
        try:
            subjects[name] = prepare_subject(config, name, feature_rows, work)
        except EmptySubjectError as err:
            excluded[name] = err
            log.warning("excluded: %s", err)
    if not subjects:
        raise next(iter(excluded.values()))
    if excluded:
        log.warning("%d of %d subjects excluded (nothing to fit); the analysis goes on with %d", len(excluded),
                    len(excluded) + len(subjects), len(subjects))
    return subjects, {name: str(err) for name, err in excluded.items()}


def run_feature_rows(stores, instructions):
    feature_rows = {}
    for model, store in stores.items():
        for name in instructions[model]:
            for run in store.runs(name):
                feature_rows.setdefault(run, []).append(
                    (str(store.path), int(store.done(name, run).size), store.parameters.get("tr")))
    return feature_rows
