"""benchmarks/gpu_client.py, the check that a GPU machine runs once: its CPU smoke run has to
work here, since a broken script would waste the GPU's only try."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fedland.codec.methods import METHODS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_client.py"
VARIANTS = ["naive-fp32", "efficient-fp32", "efficient-w1a8g8-lowbit"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def gpu_client(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    return importlib.import_module("gpu_client")


def test_the_tiny_cpu_run_reports_every_variant_at_each_batch(tmp_path):
    out = tmp_path / "result.json"
    args = ["--device", "cpu", "--tiny", "--batches", "2,3", "--steps", "2", "--warmup", "1"]
    result = run(*args, "--json", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert [(r["variant"], r["batch"]) for r in rows] == [(v, b) for b in (2, 3) for v in VARIANTS]
    for row in rows:
        assert row["status"] == "ok" and row["step_ms"] > 0
        assert row["images_per_s"] == pytest.approx(1000 * row["batch"] / row["step_ms"])
        assert row["peak_mib"] is None and row["memory_vs_naive"] is None  # CUDA only
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| variant | batch | step ms | images/s | peak MiB |")
    assert [line.split(" | ")[:2] for line in table[2:]] == [
        [f"| {r['variant']}", str(r["batch"])] for r in rows
    ]
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    assert statuses.pop("peak memory: naive > memory-efficient > low-bit") == "skip"
    assert statuses.pop("client reply: peak-memory-mb and update") == "ok"
    assert len(statuses) == len(METHODS) and set(statuses.values()) == {"ok"}  # one per method
    assert "elapsed" in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_a_missing_gpu_is_refused_with_exit_code_2():
    result = run("--tiny")
    assert result.returncode == 2
    assert "CUDA is not available" in result.stderr and "--device cpu" in result.stderr


@pytest.mark.parametrize(
    ("failure", "status"), [(torch.cuda.OutOfMemoryError, "OOM"), (RuntimeError, "error")]
)
def test_a_variant_that_fails_is_a_row_not_a_crash(gpu_client, monkeypatch, failure, status):
    def failing(*args):
        raise failure("CUDA out of memory")

    monkeypatch.setattr(gpu_client, "train_round", failing)
    row, update = gpu_client.measure("naive-fp32", 24, gpu_client.TINY, torch.device("cpu"), 1, 0)
    assert (row.status, row.step_ms, update) == (status, None, None)
    assert f"| naive-fp32 | 24 | {status} | - | - | - |" in gpu_client.markdown([row])
    assert (row.error is None) == (status == "OOM")


def test_peaks_out_of_order_fail_the_memory_check(gpu_client):
    rows = [
        gpu_client.Row(variant, 8, "ok", 1.0, 8.0, peak)
        for variant, peak in zip(VARIANTS, (900.0, 400.0, 500.0), strict=True)
    ]
    gpu_client.compare_with_naive(rows)
    assert [row.memory_vs_naive for row in rows] == pytest.approx([1.0, 4 / 9, 5 / 9])
    check = gpu_client.check_memory_order(rows)
    assert check.status == "FAIL" and "batch 8" in check.detail
