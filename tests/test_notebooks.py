"""The analyst notebooks run end to end on the demo region, and are kept in git without outputs.

Each notebook is executed by a fresh kernel of this interpreter (a kernelspec written to a
temporary folder, so a machine without a registered ``python3`` kernel, or with one pointing at
another Python, runs them the same), in a temporary ``GEORISK_DATA_DIR`` with the Agg backend.
A notebook's own ``assert`` cells carry the facts an analyst relies on: any error fails the test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = (
    "01_buffer_queries.ipynb",
    "02_relocation_priority.ipynb",
    "03_headtop_tailings.ipynb",
    "04_exports.ipynb",
)
KERNEL = "georisk-notebook-test"
CELL_TIMEOUT_S = 300


@pytest.fixture(scope="session")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """Kernel specs holding one kernel: ipykernel on this very interpreter."""
    kernels = tmp_path_factory.mktemp("kernels")
    (kernels / KERNEL).mkdir()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "georisk notebook tests",
        "language": "python",
    }
    (kernels / KERNEL / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    specs = KernelSpecManager(kernel_dirs=[str(kernels)])
    assert specs.get_kernel_spec(KERNEL).argv[0] == sys.executable
    return specs


def test_every_notebook_is_tested() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stripped(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, f"{name} has no code"
    dirty = [i for i, cell in enumerate(code) if cell.outputs or cell.execution_count is not None]
    assert not dirty, f"{name}: code cells {dirty} keep outputs or execution counts; strip them"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(
    name: str,
    kernel_specs: KernelSpecManager,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GEORISK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("GEORISK_DATABASE_URL", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    kernel = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs)
    client = NotebookClient(
        notebook,
        km=kernel,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working folder
    )
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), f"{name}: some cells did not run"
