"""The Python face of the engine, for notebooks: estimators, a whole analysis from a mapping, its tables.

>>> from encoding.api import RunwiseRidgeCV, analyze
>>> model = RunwiseRidgeCV(delays=[1, 2, 3, 4]).fit(X_runs, Y_runs, groups=stimuli)
>>> results = analyze({"features_dir": "features", "models": ["qwen2.5-vl"], ...}, base_dir="study/")
>>> results.best_layers.head()
"""
from .config import load_config
from .encoders import FittedEncoder
from .encoders import load_encoder as load_model
from .encoders import save_encoder as save_model
from .fmri import TargetSpace, cifti_to_vertices, load_run, save_map
from .outputs.native_maps import write_native_maps
from .pipeline import AnalysisResults, output_folder, read_results, run_analysis
from .ridge.estimators import RunwiseBandedRidgeCV, RunwiseRidgeCV
from .rois import AUTO_ATLAS, BUILTIN_ATLASES


def analyze(config, overwrite=False, base_dir=None, **overrides):
    """Run a whole analysis from a config mapping (or a YAML file) and return its tables.

    Parameters
    ----------
    config : mapping, str or Path
        The same keys as a YAML config, checked the same way.
    overwrite : bool
        Replace an existing output folder.
    base_dir : str or Path, optional
        For a mapping: the folder its relative paths are read from (default: the working directory).
    **overrides
        Config keys to override (as the command line's flags do), e.g. ``out="results/x"``.

    Returns
    -------
    AnalysisResults (the folder is written as by ``python -m encoding.run``)
    """
    loaded = load_config(config, overrides, base_dir=base_dir)
    run_analysis(loaded, overwrite=overwrite)
    return read_results(output_folder(loaded["out"], loaded["name"]))


__all__ = ["AUTO_ATLAS", "AnalysisResults", "FittedEncoder", "load_model", "save_model", "BUILTIN_ATLASES", "RunwiseBandedRidgeCV", "RunwiseRidgeCV",
           "TargetSpace", "analyze", "cifti_to_vertices", "load_config", "load_run", "read_results", "save_map",
           "write_native_maps"]
