"""The toy study (``encoding.demo.toy_study``) analysed once and shared by the tests that read its output folder."""
from pathlib import Path

from encoding.config import load_config
from encoding.demo.toy_study import write_toy_study
from encoding.pipeline import run_analysis


def toy_output(folder):
    """The toy study analysed into ``folder / "out"``, built once and reused (tests share it)."""
    folder = Path(folder)
    out = folder / "out"
    if not (out / "report.html").is_file():
        config = load_config(write_toy_study(folder), {"out": str(out)})
        run_analysis(config, overwrite=True)
    return out
