"""The benchmark scripts run (`--quick`: tiny networks, a step or two) and write their JSON
with the figures and the environment they were taken in; gpu.py without CUDA says so."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import REPO

BENCH = REPO / "benchmarks"
ENV_KEYS = {"device", "torch", "threads", "cpu_affinity", "cpu"}


def _run(script: str, tmp_path, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", "--out-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / script.replace(".py", ".json")).read_text())
    assert report["environment"].keys() >= ENV_KEYS and report["quick"] is True
    assert f"JSON: {tmp_path}" in proc.stdout  # the table names where the figures went
    return report


def test_vs_plain_loop_compares_both_loops_in_and_out_of_process(tmp_path):
    report = _run("vs_plain_loop.py", tmp_path, "--rows", "default")
    row = report["rows"]["default"]
    for side in ("ganops", "plain"):
        assert row[f"{side}_ms_per_step"] > 0 and len(row[f"{side}_block_s"]) == report["blocks"]
    assert row["ratio_plain_over_ganops"] == pytest.approx(
        row["plain_ms_per_step"] / row["ganops_ms_per_step"], rel=0.01
    )
    assert row["params_G"] > 0 and "channels_last" in row["ganops_chose"]
    whole = report["whole_process"]["default"]
    assert whole["gan_train_s"] > 0 and whole["plain_script_s"] > 0 and whole["steps"] == 3


def test_families_reports_training_loading_evaluation_and_startup(tmp_path):
    report = _run("families.py", tmp_path, "--families", "dcgan")
    (point,) = report["training"]
    assert point["family"] == "dcgan" and point["ms_per_step"] > 0 and point["img_per_s"] > 0
    assert point["peak_rss_mib"] >= point["rss_after_imports_mib"] > 0
    assert report["loading"]["img_per_s"] > 0 and report["evaluation"]["img_per_s"] > 0
    assert set(report["startup"]) == {"gan_help_s", "gan_train_help_s", "gan_train_1_step_s"}


def test_conv_peak_reports_the_fraction_of_the_measured_peak(tmp_path):
    report = _run("conv_peak.py", tmp_path)
    measured = report["peak_rows"] + report["dcgan_layers"]  # the peak: the best of them
    fp32 = [r["gflops"] for r in measured if r["precision"] == "fp32"]
    assert report["peak_gflops"] == report["peak_gflops_by_precision"]["fp32"] == max(fp32) > 0
    (step,) = report["steps"]
    assert step["gflop_per_step"] > 0 and step["ms_per_step"] > 0
    peak = report["peak_gflops_by_precision"][step["precision"]]  # the precision it ran in
    assert step["fraction_of_peak"] == pytest.approx(step["gflops"] / peak)
    layers = report["dcgan_layers"]  # D: 2 strided + head; G: input + 2 transposed (16 px)
    for precision in report["peak_gflops_by_precision"]:  # each precision's layers
        mine = [r["layer"].split()[0] for r in layers if r["precision"] == precision]
        assert mine == ["D"] * 3 + ["G"] * 3
    assert all(r["gflop"] > 0 and r["fraction_of_peak"] > 0 for r in layers)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_gpu_benchmark_without_cuda_says_so_and_exits_0(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCH / "gpu.py"), "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "no CUDA device visible" in proc.stderr
    assert not list(tmp_path.iterdir())  # nothing measured, nothing written


def test_precision_times_every_family_in_both_precisions_and_layouts(tmp_path):
    report = _run("precision.py", tmp_path, "--families", "dcgan,cyclegan")
    for row in report["families"]:
        assert set(row["ms_per_step"]) == {
            "fp32 contiguous", "fp32 channels_last", "bf16 contiguous", "bf16 channels_last"
        } and min(row["ms_per_step"].values()) > 0  # fmt: skip
        assert set(row["channels_last_faster"]) == {"fp32", "bf16"} and row["bf16_speedup"] > 0
