"""The side studies on the main rooms (issue 29): RSA and the words study choose layers with the pipeline's
chooser, the words fits live by the sweep's fingerprints and atomic writes, and the rsa, words and triplets
packages import project modules at their tops, without a circle and without another package's private module."""
import ast
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from encoding.pipeline import select_layers
from encoding.rsa.__main__ import main as rsa_main
from encoding.sweep import content_digest
from encoding.words import WordFit, fit_words
from encoding.words._fit import held_out_sensor_terms
from encoding.words._study import SENSOR_FIELDS, _read_fit, _write_fit, sensor_terms, work_folder
from features.errors import InputError
from test_ridge_imports import ROOT, _cycle, _graph
from test_rsa import _word_study

PROJECT = ("encoding", "extractors", "features", "instructions")
SIDE_STUDIES = ("encoding.words", "encoding.rsa", "encoding.triplets")


def test_the_layer_chooser_gives_every_stored_layer_or_the_requested_ones():
    stored = [0, 1, 2, 3]
    for every in ("all", None, ["all"]):
        assert select_layers(every, stored, "toy.h5") == stored
    assert select_layers("3,1", stored, "toy.h5") == [3, 1]
    assert select_layers([2], stored, "toy.h5") == [2]
    assert select_layers(2, stored, "toy.h5") == [2]
    assert select_layers(["0", "2"], stored, "toy.h5") == [0, 2]


def test_the_layer_chooser_names_the_file_and_the_field():
    with pytest.raises(InputError) as missing:
        select_layers("1,5", [0, 1, 2, 3], "features/toy.h5", "study.yaml")
    assert str(missing.value) == "features/toy.h5: field 'layers' asks for layer 5, stored layers are 0..3."
    with pytest.raises(InputError) as malformed:
        select_layers("1,two", [0, 1, 2, 3], "features/toy.h5", "study.yaml")
    assert str(malformed.value) == ("--layers: expected 'all' or a comma list of layer indices such as 0,8,16, "
                                    "found '1,two' (config key 'layers' in study.yaml).")


@pytest.mark.parametrize("layers, named", [("9", "field 'layers' asks for layer 9"),
                                           ("two", "config key 'layers' in")])
def test_rsa_layers_not_stored_or_not_indices_are_one_sentence(tmp_path, capsys, layers, named):
    _, subjects = _word_study(tmp_path, n_subjects=1)
    config = {"features_dir": "features", "models": ["toy"], "subjects": subjects, "rois": {"atlas": "rois.yaml"}}
    (tmp_path / "rsa.yaml").write_text(yaml.safe_dump(config))
    assert rsa_main(["--config", str(tmp_path / "rsa.yaml"), "--out", str(tmp_path / "out"), "--layers", layers]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and named in error
    assert ("toy.h5" if layers == "9" else "rsa.yaml") in error
    assert not (tmp_path / "out").exists()


def test_the_sweeps_content_digest_names_a_words_fit_as_before():
    """A words work folder written before keeps its names, so its fits are reused, not recomputed: the two
    fingerprints are those the words study's own digest gave these inputs (at commit b29fc60)."""
    settings = {"alphas": [0.1, 10.0], "cv_folds": None, "n_permutations": 100, "permutation_block": 10, "seed": 0,
                "version": 3}
    Y = (np.arange(40 * 3 * 5).reshape(40, 3, 5) % 7 - 3) / 2.0
    X = np.linspace(-1, 1, 40 * 8, dtype=np.float32).reshape(40, 8)[:, ::2]      # not contiguous
    parts = [settings, Y, np.repeat(np.arange(4), 10), {"all": [0, 1, 2]}, X]
    assert content_digest(parts) == "f55c1a5c84787643aef57034429e5876"
    assert content_digest([*parts, np.arange(40) % 9 != 0]) == "aef63c61de07b6093ea014764f94f5f8"


def test_a_words_fit_file_holds_no_sensor_terms_and_they_come_back_equal(tmp_path):
    """A work file keeps every array of a fit but the per-sensor r terms (n_words x sensors x windows); compare
    gets them from the fit computed again (``refit``), or from a file written when files held them."""
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((60, 4)), rng.standard_normal((60, 3, 2))
    Y[:, 0, 1] += X[:, 0]
    segments = np.repeat(np.arange(4), 15)
    fit = fit_words(X, Y, segments, {"front": [0, 1], "back": [2]}, n_permutations=20, test_segments=[2, 3])
    assert fit.test_sensor_r_terms.shape == (30, 3, 2)
    path = tmp_path / "fit.npz"
    _write_fit(path, fit)
    assert sorted(path.parent.iterdir()) == [path]                    # the temporary name is gone
    with np.load(path) as data:
        assert sorted(data.files) == sorted([n for n in WordFit.FIELDS if n not in SENSOR_FIELDS] + ["groups"])
    calls = []

    def refit(n_permutations):                                        # the same fit, its permutations left out
        calls.append(n_permutations)
        return fit_words(X, Y, segments, {"front": [0, 1], "back": [2]}, n_permutations=n_permutations,
                         test_segments=[2, 3])
    read = _read_fit(path, refit)
    assert read.sensor_r_terms is None and read.test_sensor_r_terms is None
    assert read.extra["groups"] == ["front", "back"]
    for name in WordFit.FIELDS:
        if name not in SENSOR_FIELDS:
            np.testing.assert_array_equal(getattr(read, name), getattr(fit, name))
    np.testing.assert_array_equal(sensor_terms(read), fit.sensor_r_terms)
    np.testing.assert_array_equal(sensor_terms(read, "test_sensor_r_terms"), fit.test_sensor_r_terms)
    assert calls == [0, 0] and sensor_terms(fit) is fit.sensor_r_terms
    # the per-sensor terms sum over words to r at every sensor x window
    np.testing.assert_allclose(sensor_terms(read).sum(0), fit.r, atol=1e-5)
    # without a refit, one sentence naming the file
    with pytest.raises(InputError, match="fit.npz: field 'sensor_r_terms' is not in this fit file"):
        sensor_terms(_read_fit(path))
    # the held-out test words' terms from the test model alone equal the whole fit's, one test segment or two
    for test in ([3], [2, 3]):
        whole = fit_words(X, Y, segments, n_permutations=0, test_segments=test)
        np.testing.assert_array_equal(held_out_sensor_terms(X, Y, segments, test), whole.test_sensor_r_terms)
    np.testing.assert_array_equal(sensor_terms(_read_fit(path, None, lambda: whole.test_sensor_r_terms),
                                               "test_sensor_r_terms"), fit.test_sensor_r_terms)
    # a file written when files held the per-sensor terms gives them as they are
    old = tmp_path / "old.npz"
    np.savez(old, groups=np.array(["front", "back"]), **{name: getattr(fit, name) for name in WordFit.FIELDS})
    np.testing.assert_array_equal(sensor_terms(_read_fit(old)), fit.sensor_r_terms)


def test_the_words_work_folder_removes_only_what_killed_runs_left(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    fits = tmp_path / "study.work" / "fits"
    fits.mkdir(parents=True)
    dead = fits / f".abc.npz.tmp-{int(finished.stdout)}"
    alive = fits / f".def.npz.tmp-{os.getpid()}"
    for path in (dead, alive, fits / "ghi.npz"):
        path.write_bytes(b"x")
    assert work_folder({"work_dir": str(tmp_path / "study.work")}) == tmp_path / "study.work"
    assert sorted(p.name for p in fits.iterdir()) == [alive.name, "ghi.npz"]


def _imports_in_bodies(path, package):
    """(line, module) of every project import inside a function body of ``path``."""
    found = []
    for function in ast.walk(ast.parse(path.read_text())):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom):
                names = [_imports_of(node, package)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found += [(node.lineno, name) for name in names if name.split(".")[0] in PROJECT]
    return found


def _imports_of(node, package):
    if node.level:
        base = package.split(".")[:len(package.split(".")) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))
    return node.module or ""


@pytest.mark.parametrize("package", SIDE_STUDIES)
def test_a_side_study_has_no_import_circle(package):
    graph = _graph(package)
    assert len(graph) >= 4 and _cycle(graph) is None


def _private_imports(path, package):
    """Private modules and names of other project packages that ``path`` imports (``extractors.run._Ranks``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = _imports_of(node, package)
            names = [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name for name in names if name.split(".")[0] in PROJECT and not name.startswith(package + ".")
                  and any(part.startswith("_") for part in name.split(".")[1:])}
    return sorted(found)


def test_the_private_import_finder_sees_a_private_module_and_a_private_name(tmp_path):
    path = tmp_path / "judge.py"
    path.write_text("from extractors.models._base import ChatAdapter\n\ndef f():\n    from extractors.run import _Ranks\n"
                    "from ._items import load_image\nfrom extractors.words import MINILM\n")
    assert _private_imports(path, "encoding.triplets") == ["extractors.models._base.ChatAdapter",
                                                           "extractors.run._Ranks"]
    assert _imports_in_bodies(path, "encoding.triplets") == [(4, "extractors.run")]


@pytest.mark.parametrize("package", SIDE_STUDIES)
def test_a_side_study_imports_no_private_module_or_name_of_another_package(package):
    for path in ROOT.joinpath(*package.split(".")).glob("*.py"):
        assert _private_imports(path, package) == [], path.name


@pytest.mark.parametrize("package", SIDE_STUDIES)
def test_a_side_study_imports_project_modules_at_its_top_unless_marked_lazy(package):
    for path in ROOT.joinpath(*package.split(".")).glob("*.py"):
        lines = path.read_text().splitlines()
        unmarked = [(line, module) for line, module in _imports_in_bodies(path, package)
                    if "# lazy:" not in lines[line - 1]]
        assert unmarked == [], f"{path.name} imports inside functions: {unmarked}"


_HELP = """
import contextlib, io, runpy, sys
sys.argv = [{module!r}, "--help"]
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    runpy.run_module({module!r}, run_name="__main__")
print(sorted(name for name in ("torch", "transformers", "accelerate") if name in sys.modules))
"""


@pytest.mark.parametrize("package", SIDE_STUDIES)
def test_a_side_studys_help_starts_no_torch(package):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _HELP.format(module=package)], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
