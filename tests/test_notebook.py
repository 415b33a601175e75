"""notebooks/quickstart.ipynb is stored executed and still runs, top to bottom, in under 3 minutes."""

from __future__ import annotations

import time

import pytest

from tests.conftest import REPO

NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"


def test_quickstart_is_stored_with_its_outputs():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code)
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    source = "".join(c.source for c in nb.cells)
    assert "MLRSNetScheduler(optimizer, total_steps=" in source and "sched.step(loss)" in source


@pytest.mark.slow
def test_quickstart_executes(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    start = time.monotonic()
    nbclient.NotebookClient(nb, timeout=170, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert time.monotonic() - start < 180
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "digits_cnn_sym40: 3 nets after epochs [1, 15, 30] of meta-training on digits_cnn" in text
    for name in ("MLR-SNet (frozen bundle)", "step (x0.1 at 1/2 and 3/4)", "cosine"):
        assert name in text
    assert "next lr" in text
