"""The house's import rules (issue 29), read from the source of every product package:

- no module imports another package's private module (a dotted part starting with one underscore); a
  subpackage is another package: ``encoding.sweep`` may not import ``encoding.fmri._peek``, and
  ``extractors.run`` may not import ``extractors.models._base``;
- a project import inside a function body is lazy on purpose, and says why in a ``# lazy:`` comment on its line
  or on the line above its run of import statements (an optional or heavy dependency the calling path does not
  always need); every other project import sits at the top of its module.
"""
import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("encoding", "extractors", "features", "instructions")
#: Packages left out until a change brings them under these rules (none: rsa, words and triplets follow them since
#: their own change of issue 29, which tests them in test_side_studies_rooms.py as well).
NOT_YET = ()
LAZY_MARK = "# lazy:"


def _module_name(path, root=ROOT):
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path, root=ROOT):
    """The package a file belongs to: the package itself for an ``__init__.py``, else its folder's."""
    return ".".join(path.relative_to(root).parts[:-1])


def _is_module(name, root=ROOT):
    folder = root.joinpath(*name.split("."))
    return folder.with_suffix(".py").is_file() or (folder / "__init__.py").is_file()


def _imported(node, package, root=ROOT):
    """Project modules an import statement names, as dotted names (``from a import b`` names ``a.b`` too when
    ``b`` is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] in PACKAGES]
    if node.level:
        parts = package.split(".")
        base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if base.split(".")[0] not in PACKAGES:
        return []
    return [base] + [f"{base}.{alias.name}" for alias in node.names if _is_module(f"{base}.{alias.name}", root)]


def _private_owner(module):
    """The package that owns the first private part of ``module``, or None when no part is private."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def _function_imports(tree):
    """Import statements inside a function or method body (nested ones included)."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    found[id(inner)] = inner
    return sorted(found.values(), key=lambda n: n.lineno)


def _marked_lazy(node, lines, import_lines):
    """Whether the statement, or the line above the run of import statements it belongs to, says ``# lazy:``."""
    if any(LAZY_MARK in lines[i] for i in range(node.lineno - 1, node.end_lineno)):
        return True
    above = node.lineno - 2
    while above >= 0 and above + 1 in import_lines:
        if LAZY_MARK in lines[above]:
            return True
        above -= 1
    return above >= 0 and LAZY_MARK in lines[above]


def violations(path, root=ROOT):
    """``(private, unmarked)``: the private modules of other packages ``path`` imports, and its project imports
    inside function bodies that carry no ``# lazy:`` comment, each as ``"<line> <module>"``."""
    source = path.read_text()
    tree, lines = ast.parse(source), source.splitlines()
    package = _package_of(path, root)
    private = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for module in _imported(node, package, root):
                owner = _private_owner(module)
                if owner is not None and owner != package:
                    private.append(f"{node.lineno} {module}")
    inner = _function_imports(tree)
    import_lines = {line for node in inner for line in range(node.lineno, node.end_lineno + 1)}
    unmarked = [f"{node.lineno} {_imported(node, package, root)[0]}" for node in inner
                if _imported(node, package, root) and not _marked_lazy(node, lines, import_lines)]
    return private, unmarked


def _product_files():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = _module_name(path)
            if not any(name == skip or name.startswith(skip + ".") for skip in NOT_YET):
                yield path


def test_the_checker_sees_both_faults_and_accepts_what_is_allowed(tmp_path):
    for folder in ("encoding/fmri", "encoding/sweep", "extractors/models"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "encoding" / "__init__.py").write_text("")
    (tmp_path / "extractors" / "__init__.py").write_text("")
    for private in ("encoding/fmri/_peek.py", "extractors/models/_base.py"):
        (tmp_path / private).write_text("def run_shape(): pass\n")
    plan = tmp_path / "encoding" / "sweep" / "_plan.py"
    plan.write_text("from ..fmri._peek import run_shape\n"
                    "from encoding.fmri import _peek\n"
                    "from ..fmri import run_shape\n"
                    "import json\n\n\n"
                    "def f():\n"
                    "    import numpy\n"
                    "    from ..fmri import run_shape\n\n\n"
                    "def g():\n"
                    "    # lazy: pulls a heavy library\n"
                    "    import json\n"
                    "    from ..fmri import peek_space\n"
                    "    from extractors.models import torch_dtype  # lazy: pulls torch\n")
    assert violations(plan, tmp_path) == (["1 encoding.fmri._peek", "2 encoding.fmri._peek"], ["9 encoding.fmri"])
    sibling = tmp_path / "encoding" / "fmri" / "_load.py"
    sibling.write_text("from ._peek import run_shape\nfrom . import _peek\n")
    assert violations(sibling, tmp_path) == ([], [])
    init = tmp_path / "encoding" / "fmri" / "__init__.py"
    init.write_text("from ._peek import run_shape\n")
    assert violations(init, tmp_path) == ([], [])
    run = tmp_path / "extractors" / "run.py"
    run.write_text("import extractors.models._base as base\n")
    assert violations(run, tmp_path) == (["1 extractors.models._base"], [])


def test_no_module_imports_another_packages_private_module():
    found = {_module_name(path): violations(path)[0] for path in _product_files()}
    assert {name: lines for name, lines in found.items() if lines} == {}
    assert len(found) > 100   # the walk saw the whole house


def test_project_imports_inside_functions_are_lazy_on_purpose():
    found = {_module_name(path): violations(path)[1] for path in _product_files()}
    assert {name: lines for name, lines in found.items() if lines} == {}


def test_the_command_line_module_imports_no_torch_and_no_matplotlib():
    """What the lazy imports of ``encoding.run`` keep off ``--help`` and off importing it."""
    code = "import sys, encoding.run; print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env=env)
    assert done.stdout.strip() == "[]"
