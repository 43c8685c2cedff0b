"""Notebooks are committed clean and follow the curriculum's conventions."""

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_the_curriculum_has_notebooks():
    assert NOTEBOOKS, "no NN_*.ipynb notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_outputs(path: Path):
    notebook = nbformat.read(path, as_version=4)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count)
    ]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_one_parameters_cell_with_a_profile(path: Path):
    notebook = nbformat.read(path, as_version=4)
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', expected 1"
    assert "profile =" in tagged[0].source
    first_code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert first_code is tagged[0], f"{path.name}: the parameters cell must be the first code cell"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_parameter_is_documented_and_read_by_papermill(path: Path):
    """papermill skips a parameter line holding two '=' (a report would then not pass it)."""
    import ast

    import papermill

    notebook = nbformat.read(path, as_version=4)
    tagged = next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))
    assigned = [node.targets[0].id for node in ast.parse(tagged.source).body]
    declared = papermill.inspect_notebook(str(path))
    assert list(declared) == assigned, f"{path.name}: papermill reads {list(declared)} of {assigned}"
    undocumented = [name for name, parameter in declared.items() if not parameter["help"]]
    assert not undocumented, f"{path.name}: parameters {undocumented} have no comment saying what they take"
