"""Command line: predicted responses to a stimulus nobody scanned, from encoders saved by ``encoding.run``.

    python -m encoding.predict --model results/study/models/ --features new_movie/qwen2.5-vl.h5 --out pred/

For each stimulus run of the features store (under the encoder's instruction), the predicted time courses
go to ``<out>/<encoder stem>_run-<run>_pred.h5`` (dataset ``prediction``, shape (n_TR, n_targets), NaN for
targets the fit left out) and their mean over time to a map in the space the subject's runs came in
(``..._stat-meanpred``: NIfTI, CIFTI dscalar, GIFTI pair or a TSV of parcels). A store extracted with other
settings than the encoder's training features (another model, frames, window, pooling, prompt...) is refused
with one sentence; an existing output folder is kept unless ``--overwrite``.
"""
import argparse
import logging
import sys
from pathlib import Path

import h5py
import numpy as np

from features.errors import InputError, command
from features.store import FeatureStore

from .encoders import check_store, load_encoder
from .fmri import save_map
from .outputs.folder import atomic_folder, refuse_existing

log = logging.getLogger(__name__)


def predict_store(encoder, store_path):
    """Run name -> predicted responses (n_TR, n_targets) for every run of a features store.

    Raises
    ------
    InputError when the store was written with other extraction parameters or lacks the encoder's
    instruction, layer or prompt.
    """
    instruction, layer = encoder.info["instruction"], int(encoder.info["layer"])
    with FeatureStore(store_path) as store:
        check_store(encoder, store.parameters, store.path)
        if instruction not in store.instructions():
            raise InputError(f"{store.path}: field '{instruction}' does not exist (the encoder's instruction); the "
                             f"store holds {', '.join(store.instructions())}.")
        prompt = encoder.info.get("prompt", "")
        if prompt and store.prompt(instruction) != prompt:
            raise InputError(f"{store.path}: field '{instruction}' was computed with the prompt "
                             f"{store.prompt(instruction)!r}, the encoder with {prompt!r}.")
        return {run: encoder.predict(store.read_layer(instruction, run, layer)) for run in store.runs(instruction)}


def write_predictions(model_files, features, out, overwrite=False):
    """Predict every run of ``features`` with each encoder file and write the output folder (module docstring).

    Returns
    -------
    list of Path written (inside ``out``)
    """
    out = Path(out)
    refuse_existing(out, overwrite)
    encoders = [(path, load_encoder(path)) for path in encoder_files(model_files)]
    written = []
    with atomic_folder(out, overwrite) as partial:
        partial = Path(partial)
        for path, encoder in encoders:
            stem = path.name.removesuffix("_encoder.h5").removesuffix(".h5")
            for run, prediction in predict_store(encoder, features).items():
                name = f"{stem}_run-{''.join(ch for ch in run if ch.isalnum())}"
                target = partial / f"{name}_pred.h5"
                with h5py.File(target, "w") as handle:
                    handle.create_dataset("prediction", data=prediction)
                    handle.attrs.update(encoder=str(path.resolve()), features=str(Path(features).resolve()), run=run)
                written.append(out / target.name)
                if encoder.space is not None:
                    mean = np.nanmean(prediction, axis=0) if np.isfinite(prediction).any() else prediction[0]
                    saved = save_map(mean, encoder.space, partial / f"{name}_stat-meanpred")
                    written.append(out / saved.name)
                log.info("%s: predicted %d TRs x %d targets of run %s", path.name, *prediction.shape, run)
    return written


def encoder_files(paths):
    """The encoder files named: files as given, and every ``*_encoder.h5`` of a folder (``<out>/models``)."""
    files = []
    for path in map(Path, paths):
        found = sorted(path.glob("*_encoder.h5")) if path.is_dir() else [path]
        if not found:
            raise InputError(f"{path}: field '--model' names a folder without encoder files (*_encoder.h5).")
        files += found
    return files


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m encoding.predict",
                                     description="Predicted responses to new stimuli from saved encoders.")
    parser.add_argument("--model", required=True, action="append",
                        help="an encoder file written by encoding.run --save-models, or a folder of them "
                             "(<out>/models); repeat for several")
    parser.add_argument("--features", required=True, help="the new stimulus's features store (.h5)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")
    return parser


@command(build_parser)
def main(args):
    written = write_predictions(args.model, args.features, args.out, args.overwrite)
    print(f"wrote {len(written)} file(s) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
