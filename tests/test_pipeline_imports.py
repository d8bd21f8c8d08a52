"""The pipeline package (issue 29): its stage modules import one another in one direction only, and it imports
no private module of another package (read from the source, function bodies included)."""
from test_ridge_imports import ROOT, _cycle, _graph, _imports


def test_the_pipeline_package_has_no_import_circle():
    graph = _graph("encoding.pipeline")
    assert {"encoding.pipeline._run", "encoding.pipeline._inputs", "encoding.pipeline._assemble"} <= set(graph)
    assert _cycle(graph) is None


def test_the_pipeline_imports_no_private_module_of_another_package():
    for path in (ROOT / "encoding" / "pipeline").glob("*.py"):
        imported = _imports(path, "encoding.pipeline")
        private = sorted(m for m in imported if m.startswith("encoding.") and not m.startswith("encoding.pipeline.")
                         and any(part.startswith("_") for part in m.split(".")[1:-1]))
        assert private == [], f"{path.name} imports {private}"


def test_the_analysis_module_is_gone_and_parcels_are_painted_by_rois():
    assert not (ROOT / "encoding" / "analysis.py").exists()
    imported = _imports(ROOT / "encoding" / "outputs" / "native_maps.py", "encoding.outputs")
    assert not any(m.startswith("encoding.flatmap") for m in imported)
