"""Shared set-up of the hpo tests (no tests here): a tiny params.yaml and its classifier.

Everything is tiny on purpose: 16 px digits, width 8, batch 16, tens of steps, small
sample counts. The classifier (the offline feature extractor) trains for one epoch; its
quality does not matter, only that every trial is measured the same way.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from gan.config import ClassifierConfig

REPO = Path(__file__).resolve().parents[1]

PARAMS = {
    "train": {
        "data": "DATA",
        "run": "t",
        "seed": 0,
        "batch_size": 16,
        "device": "cpu",
        "model": {"family": "dcgan", "z_dim": 8, "width": 8},
        "optim": {"g_lr": 2.0e-3, "d_lr": 2.0e-3, "g_betas": [0.5, 0.999], "d_betas": [0.5, 0.999]},
        "ema": {"decay": 0.9, "warmup_steps": 3},
        "log_every": 10,
        "progress": False,
    },
    "evaluate": {
        "data": "DATA",
        "classifier": "CLASSIFIER",
        "batch_size": 64,
        "kid_subset_size": 32,
    },
    "hpo": {
        "study": "tiny",
        "n_trials": 3,
        "budget_steps": 6,
        "report_every": 6,
        "report_samples": 32,
        "objective_samples": 48,
        "pruner": {"name": "none"},
        "space": {"optim.g_lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True}},
    },
}


@pytest.fixture
def classifier16(digits16, tmp_path_factory) -> Path:
    """Trained once per session (kept on disk, so every hpo test module shares it)."""
    out = tmp_path_factory.getbasetemp() / "hpo-classifier"
    if not (out / "classifier.json").is_file():
        from gan.metrics.classifier import train_classifier

        train_classifier(ClassifierConfig(data=str(digits16), output=str(out), epochs=1))
    return out


def write_params(path: Path, data: Path, classifier: Path, **sections) -> Path:
    params = copy.deepcopy(PARAMS)
    for name, values in sections.items():
        params[name].update(values)
    params["train"]["data"] = params["evaluate"]["data"] = str(data)
    params["evaluate"]["classifier"] = str(classifier)
    text = yaml.safe_dump(params, sort_keys=False)
    text = text.replace("train:\n", "train:  # the train section, kept by apply\n", 1)
    path.write_text("# tiny params for the hpo tests\n" + text)
    return path


@pytest.fixture
def params_file(tmp_path, digits16, classifier16, monkeypatch) -> Iterator[Path]:
    """params.yaml in a fresh work dir, which is also the cwd (runs/, reports/ land there).

    Torch runs on one thread meanwhile: on a shared 2-core machine, two threads per
    process made these tiny trials several times slower, not faster.
    """
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield write_params(tmp_path / "params.yaml", digits16, classifier16)
    finally:
        torch.set_num_threads(threads)


WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from gan.config import load_params
    from gan.hpo.study import run

    params, barrier, max_trials = sys.argv[1], sys.argv[2], sys.argv[3]
    if barrier != "-":  # start together: both race to create the study and its storage
        me = Path(barrier + f".{sys.argv[4]}")
        me.touch()
        while len(list(Path(barrier).parent.glob(Path(barrier).name + ".*"))) < int(sys.argv[5]):
            time.sleep(0.05)
    print(run(load_params(params), None if max_trials == "-" else int(max_trials)), flush=True)
    """
)


def start_worker(cwd: Path, *args: str) -> subprocess.Popen:
    """`gan.hpo.study.run` in its own process (what `gan hpo run` does), output to worker-<n>.log."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    log = open(cwd / f"worker-{len(list(cwd.glob('worker-*.log')))}.log", "w")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, "params.yaml", *args],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
