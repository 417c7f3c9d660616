"""notebooks/latent_space.ipynb runs top to bottom (nbclient) on tiny VAE and sequence-VAE runs
over real alerts."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO_ROOT
from tests.test_evaluation import _labelled, build_tiny_dataset, make_seq_vae_run, make_vae_run

NOTEBOOK = REPO_ROOT / "notebooks" / "latent_space.ipynb"


def _images(notebook) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


@pytest.mark.slow
def test_latent_space_notebook_runs_top_to_bottom(ztf_dir, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    data_dir = tmp_path / "tiny"
    card = build_tiny_dataset(ztf_dir, data_dir)
    run = make_vae_run(tmp_path / "vae-1", card, data_dir)
    seq_run = make_seq_vae_run(tmp_path / "seq_vae-1", card, data_dir)
    # The kernel inherits these: the notebook's parameters.
    monkeypatch.setenv("STAMPNET_RUN", str(run))
    monkeypatch.setenv("STAMPNET_SEQ_RUN", str(seq_run))
    monkeypatch.setenv("STAMPNET_SPLIT", "train+validation+test")
    monkeypatch.setenv("STAMPNET_MAX_EXAMPLES", "300")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={
        "metadata": {"path": str(REPO_ROOT)}
    }).execute()  # fmt: skip

    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
    # UMAP, one gallery per class present, interpolation, traversal, decision regions; the
    # sequence VAE's latents by class and by detections, and its light curves
    present = sum(count > 0 for count in _class_totals(card).values())
    assert _images(notebook) == 1 + present + 3 + 3
    text = "".join(
        output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
    )
    assert "'random_state': 0" in text and f"run {run}" in text
    objects = _labelled(card, "sequences")
    assert f"run {seq_run}: {objects} objects, latent dimension 3" in text
    assert "objects by number of detections: {1: " in text and "light-curve MSE" in text


def _class_totals(card) -> dict:
    counts = card["counts"]["alerts"]
    return {name: sum(counts[s].get(name, 0) for s in counts) for name in card["class_names"]}


def test_notebook_is_valid_and_has_no_stored_outputs():
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs for cell in code)
    assert "STAMPNET_RUN" in json.dumps(notebook)


@pytest.mark.slow
def test_notebook_trains_a_tiny_vae_when_no_run_is_given(tmp_path, monkeypatch):
    # As the README says: no STAMPNET_RUN and no run under runs/ -> a tiny VAE is trained on the
    # built-in data (in the kernel's working folder, here tmp_path) and the notebook goes on.
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.delenv("STAMPNET_RUN", raising=False)
    monkeypatch.setenv("STAMPNET_SPLIT", "train+validation+test")
    monkeypatch.setenv("STAMPNET_MAX_EXAMPLES", "200")
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    resources = {"metadata": {"path": str(tmp_path)}}  # the kernel's working folder
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources=resources).execute()
    text = "".join(
        output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
    )
    assert "No autoencoder run found: training a tiny VAE" in text
    assert "No sequence VAE run found" in text
    assert (tmp_path / "runs" / "vae-tiny" / "model.keras").is_file()
    assert (tmp_path / "tfrecords" / "builtin-tiny" / "dataset_card.json").is_file()
    assert _images(notebook) >= 4  # UMAP, galleries, interpolation, traversal, regions
