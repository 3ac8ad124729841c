"""The registry under the real DVC experiment commands: one consistent history.

The registry is not a DVC output, so `dvc exp run` neither checks it out nor reverts it,
queued experiments (run in a copy under .dvc/tmp/exps) append to the repository's registry
through DVC_ROOT instead of an empty one of their own, `dvc exp apply` leaves it alone,
and a rerun of the same export registers nothing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import copy_repo
from test_pipeline_dvc import run

pytestmark = pytest.mark.slow

REGISTRY = "registry/digits"  # the default: registry/<preprocess.dataset>


def history(repo: Path) -> list[dict]:
    path = repo / REGISTRY / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def repo(reproduced_repo, tmp_path_factory) -> Path:
    """A copy of the tiny pipeline after its first `dvc repro`, committed as the baseline."""
    return copy_repo(reproduced_repo[0], tmp_path_factory.mktemp("registry-dvc") / "repo")


def wait_for_queue(repo: Path, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], repo)
        if not any(s in status for s in ("Queued", "Running")):
            return
        time.sleep(3)
    raise AssertionError(f"queue did not finish:\n{status}")


def test_experiments_queues_and_apply_keep_one_history(repo):
    assert [r["version"] for r in history(repo)] == [1]
    assert "registry/digits" not in (repo / "dvc.lock").read_text()  # not an output
    assert run(["git", "status", "--porcelain", "--ignored", "registry"], repo).startswith("!!")
    assert run(["git", "status", "--porcelain"], repo) == ""  # the baseline is committed

    # rerunning promote on the same export registers nothing
    out = run(["gan", "promote"], repo)
    assert "already registered as v1" in out and len(history(repo)) == 1

    # a promotion outside DVC (another run, by hand) ...
    outside = ["-S", "train.run=outside", "-S", "train.seed=7"]  # other weights
    for stage in ("train", "evaluate", "promote"):
        run(["gan", stage, *outside], repo)
    assert [r["version"] for r in history(repo)] == [1, 2]

    # ... survives a workspace experiment, which appends v3 instead of reusing v2
    run(["dvc", "exp", "run", "-n", "longer", "-S", "train.steps=12"], repo)
    assert [r["version"] for r in history(repo)] == [1, 2, 3]

    # a queued experiment runs in a temp copy and appends to this registry, not its own
    # (one is enough: each queued run starts from the same committed baseline)
    run(["dvc", "exp", "run", "--queue", "-n", "q16", "-S", "train.steps=16"], repo)
    run(["dvc", "queue", "start", "-j", "1"], repo)
    try:
        wait_for_queue(repo)
    finally:
        run(["dvc", "queue", "stop", "--kill"], repo)
    records = history(repo)
    assert [r["version"] for r in records] == [1, 2, 3, 4], run(["dvc", "queue", "status"], repo)
    assert ".dvc/tmp/exps" in records[3]["export"]["path"]
    assert len({r["export"]["sha256"] for r in records}) == 4  # each export once
    assert not list((repo / ".dvc" / "tmp").rglob("history.jsonl"))

    # applying an experiment brings its outputs, not a registry of its own
    before = (repo / REGISTRY / "history.jsonl").read_bytes()
    run(["dvc", "exp", "apply", "q16"], repo)
    assert (repo / REGISTRY / "history.jsonl").read_bytes() == before
    out = run(["dvc", "repro"], repo)  # promote reruns at most, as a no-op
    assert (repo / REGISTRY / "history.jsonl").read_bytes() == before, out
    champion = json.loads((repo / REGISTRY / "champion.json").read_text())
    assert champion["version"] in {r["version"] for r in records if r["decision"] == "promoted"}
