"""Fixtures for the training/evaluation tests: a tiny offline model folder and a 2-task mini benchmark."""

from __future__ import annotations

import pytest

from .minibench import write_minibench
from .tiny import build_tiny_model_dir


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # job workers and CLI subprocesses inherit it

    torch.set_num_threads(1)  # the tiny model gains nothing from threads; fewer threads suffer less on a busy CPU


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model", chat=True)


@pytest.fixture(scope="session")
def tiny_plain_model(tmp_path_factory):
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-plain") / "model", chat=False)


@pytest.fixture
def minibench(tmp_path, monkeypatch):
    root = write_minibench(tmp_path / "bigbench")
    monkeypatch.setenv("DATATUNE_BIGBENCH_DIR", str(root))
    return root


def color_rows(n_repeat: int = 1) -> list[dict]:
    """Training rows phrased differently from the mini benchmark's test inputs."""
    from .minibench import COLORS

    return [{"input": f"Tell me the color of a {k}.", "output": v} for k, v in COLORS.items()] * n_repeat
