"""The last tracebacks (#27), each now one `error:` line naming the file or key: a number of
5,000 digits in params or best.json, a binary journal or best.json, a checkpoint whose
step is a string, a label beyond int64, and a full disk under `gan classifier` and
`gan hpo run` (a small tmpfs, skipped where mounting is not allowed), also once the journal's
own disk fills after a trial; a torn journal line, too few images for precision/recall and
a warm start from another architecture."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import optuna
import pytest
import yaml
from test_reliability_writes import _mount
from test_training import tiny

from gan.cli import main
from gan.config import load_params
from gan.errors import GanError
from gan.io import load_torch, save_torch
from gan.training.checkpoint import list_checkpoints
from gan.training.loop import train

pytest_plugins = ["test_hpo_support", "test_reliability_writes"]  # params_file, full_disk

HUGE = "9" * 5000
BINARY = b"\x80\x81\xfe\xff binary\n" * 40


def one_error(capsys, code: int) -> str:
    """The one `error:` line of a command that failed as a user error should (last on
    stderr, after any progress bar), with no traceback anywhere."""
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and err.strip().endswith(errors[0]), err
    assert "Traceback" not in out + err
    return errors[0]


def test_a_number_of_5000_digits_in_params_is_one_error(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(f"train:\n  steps: {HUGE}\n")
    with pytest.raises(GanError, match="line 2, column 10: a number of 5000 characters") as e:
        load_params(params)
    assert str(params) in str(e.value) and "\n" not in str(e.value)
    params.write_text("train:\n  steps: 10\n")
    with pytest.raises(GanError, match="override 'train.steps=-999.*a number of 5001"):
        load_params(params, [f"train.steps=-{HUGE}"])


def test_binary_journal_and_best_file_are_one_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("hpo:\n  storage: journal.log\n")
    Path("journal.log").write_bytes(BINARY)
    line = one_error(capsys, main(["hpo", "best"]))
    assert "hpo.storage journal.log: not an Optuna journal file (not UTF-8 text)" in line
    Path("journal.log").write_text("not json\n" * 2)  # Optuna forgives a torn last line
    assert "not an Optuna journal file" in one_error(capsys, main(["hpo", "best"]))

    for content, expected in [
        (BINARY, "best.json: not valid JSON ('utf-8' codec"),
        (f'{{"params": {{"optim.g_lr": {HUGE}}}}}'.encode(), "a number with too many digits"),
        (b"[1, 2]", "best.json: has no 'params' object"),
    ]:
        Path("best.json").write_bytes(content)
        assert expected in one_error(capsys, main(["hpo", "apply", "--best", "best.json"]))


def test_checkpoint_whose_step_is_a_string_is_set_aside(digits16, tmp_path, capsys):
    cfg = tiny(digits16, tmp_path, steps=8)
    train(cfg)
    latest = list_checkpoints(cfg.run_dir)[-1]
    state = load_torch(latest)
    save_torch(latest, {**state, "step": "8"})
    capsys.readouterr()
    assert train(cfg.model_copy(update={"steps": 12}))["resumed_from_step"] == 4
    assert "'step' is '8', not a count" in capsys.readouterr().out
    for path in list_checkpoints(cfg.run_dir):  # none intact: one error naming the newest
        save_torch(path, {**load_torch(path), "step": "x"})
    with pytest.raises(GanError, match="ckpt-00000012.pt: not a ganops checkpoint .'step' is"):
        train(cfg.model_copy(update={"steps": 16}))


def test_label_beyond_int64_is_one_error(tmp_path, capsys):
    from gan.export import save_export
    from gan.models import get_family
    from gan.models.family import DataInfo

    family = get_family("dcgan")
    cfg = family.config_class.model_validate(
        {"family": "dcgan", "z_dim": 8, "width": 8, "conditional": True}
    )
    data = DataInfo(resolution=16, channels=1, num_classes=10)
    export = save_export(
        tmp_path / "export", "dcgan", cfg.model_dump(mode="json"), data,
        family.build_generator(cfg, data),
    )  # fmt: skip
    base = ["sample", "--model", str(export), "--registry", str(tmp_path), "-n", "4"]
    code = main([*base, "--out", str(tmp_path / "s.png"), "--labels", "1", str(10**20)])
    assert one_error(capsys, code) == f"error: labels must be class indices in 0..9, not {10**20}"


def test_classifier_on_a_full_disk_is_one_error(digits16, full_disk, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    out = full_disk / "classifier"
    classifier = {"data": str(digits16), "output": str(out), "epochs": 1}
    params.write_text(yaml.safe_dump({"classifier": classifier}))
    line = one_error(capsys, main(["classifier", "-p", str(params)]))
    assert line == f"error: {out}: cannot write: no space left on device"
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]  # no temp folder left


def _trials(params: Path) -> list[optuna.trial.FrozenTrial]:
    from gan.hpo.study import load

    return load(load_params(params)).get_trials(deepcopy=False)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_hpo_run_on_a_full_disk_stops_with_the_disk_error(params_file, full_disk, capsys):
    runs = full_disk / "hpo"
    optuna_log = Records()  # what Optuna's own handler would print (it holds the real stderr)
    logging.getLogger("optuna").addHandler(optuna_log)
    try:
        code = main(["hpo", "run", "-p", str(params_file), "-S", f"hpo.runs_dir={runs}"])
    finally:
        logging.getLogger("optuna").removeHandler(optuna_log)
    assert not [r for r in optuna_log.records if r.exc_info or "failed" in r.getMessage()]
    captured = capsys.readouterr()
    assert code == 2 and "Traceback" not in captured.out + captured.err
    trial = runs / "tiny" / "trial-0"
    assert captured.err.strip() == f"error: {trial}: cannot write: no space left on device"
    trials = _trials(params_file)  # the trial is queued again, for when there is room
    assert [t.state.name for t in trials] == ["FAIL", "WAITING"]
    assert trials[1].user_attrs["retry_of"] == 0

    journal = full_disk / "optuna.journal"
    code = main(["hpo", "run", "-p", str(params_file), "-S", f"hpo.storage={journal}"])
    line = one_error(capsys, code)
    assert line == f"error: {journal}: cannot write: no space left on device"


@pytest.fixture
def roomy_disk(tmp_path):
    disk = _mount(tmp_path / "disk", "size=512k")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_journal_disk_failing_after_a_trial_is_one_error(
    params_file, roomy_disk, capsys, monkeypatch
):
    """Optuna's trial loop turned the failed write of the trial's end into an AssertionError
    ("Should not reach.") traceback; once the disk takes writes again, the study goes on.
    The disk goes read-only (a full tmpfs still takes appends into a file's last page)."""
    import gan.hpo.objective

    journal = roomy_disk / "optuna.journal"
    trained = gan.hpo.objective.train

    def train_then_fail(*args, **kwargs):
        done = trained(*args, **kwargs)
        subprocess.run(["mount", "-o", "remount,ro", str(roomy_disk)], check=True)
        return done

    monkeypatch.setattr(gan.hpo.objective, "train", train_then_fail)
    run = ["hpo", "run", "-p", str(params_file), "-S", f"hpo.storage={journal}", "--trials", "1"]
    line = one_error(capsys, main(run))
    assert line == f"error: {journal}: cannot write: read-only file system"
    monkeypatch.setattr(gan.hpo.objective, "train", trained)
    subprocess.run(["mount", "-o", "remount,rw", str(roomy_disk)], check=True)
    assert main(run) == 0, capsys.readouterr().err
    assert "COMPLETE" in [t.state.name for t in _journal_trials(journal)]


def _journal_trials(journal: Path) -> list[optuna.trial.FrozenTrial]:
    from gan.hpo.storage import open_storage

    return optuna.load_study(study_name=None, storage=open_storage(str(journal))).trials


def test_torn_last_journal_line_is_dropped_with_one_warning(tmp_path):
    """Optuna appends the next record onto a torn last line, and the merged line in the
    middle of the journal would make the whole study unreadable."""
    from gan.hpo.storage import open_storage

    journal = tmp_path / "optuna.journal"
    study = optuna.create_study(study_name="s", storage=open_storage(str(journal)))
    study.enqueue_trial({"x": 1.0})
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code": 5, "worker_id": "w", "tr')  # a full disk cut it
    with pytest.warns(UserWarning, match=f"hpo.storage {journal}: removed a torn last line"):
        storage = open_storage(str(journal))
    assert journal.read_bytes() == whole
    optuna.load_study(study_name="s", storage=storage).enqueue_trial({"x": 2.0})
    assert len(_journal_trials(journal)) == 2  # every line still reads


def test_too_few_images_for_precision_recall_is_one_error(params_file, tmp_path, capsys):
    """torch-fidelity's kthvalue() RuntimeError, e.g. `gan evaluate --images` of a run folder
    holding two PNGs."""
    from PIL import Image

    images = tmp_path / "few"
    images.mkdir()
    for i in range(3):
        Image.new("L", (16, 16), 80 * i).save(images / f"{i}.png")
    out = tmp_path / "report"
    code = main(["evaluate", "-p", str(params_file), "--images", str(images), "--out", str(out)])
    line = one_error(capsys, code)
    assert line.startswith("error: precision and recall need more than 3 samples (have 3)")
    params = ["evaluate", "-p", str(params_file), "-S", "evaluate.num_samples=1"]
    assert "evaluate.num_samples: Input should be greater than or equal to 2" in one_error(
        capsys, main(params)
    )


def test_warm_start_from_another_architecture_is_one_line(digits16, tmp_path, capsys):
    """load_state_dict's message lists every key on a line of its own."""
    first = tiny(digits16, tmp_path, steps=4, checkpoint_every=4, sample_every=4)
    train(first)
    ckpt = list_checkpoints(first.run_dir)[-1]
    wider = tiny(
        digits16,
        tmp_path,
        run="w",
        init_from=str(ckpt),
        model={"family": "dcgan", "z_dim": 8, "width": 16},
    )
    with pytest.raises(GanError) as raised:
        train(wider)
    message = str(raised.value)
    assert message.startswith(f"{ckpt}: cannot warm-start G: another architecture (size mismatch")
    assert "\n" not in message and "more)" in message
    export = first.run_dir / "export" / "generator.safetensors"
    with pytest.raises(GanError, match="not a training checkpoint .no 'nets'."):
        train(tiny(digits16, tmp_path, run="x", init_from=str(export)))
    resumed = first.model_copy(update={"steps": 8, "init_from": str(export)})
    with pytest.raises(GanError, match="not a training checkpoint"):  # a resume refuses too
        train(resumed)
    assert list_checkpoints(first.run_dir)[-1] == ckpt  # nothing moved aside


def test_a_journal_lock_left_by_a_killed_worker_can_be_seen_as_stale(tmp_path, monkeypatch):
    """Optuna's journal lock is a symlink to the journal; made from a relative path it
    dangles, its age cannot be read, and a lock a killed worker left made the next
    opener spin forever (seen in CI). The link must resolve to the journal."""
    import os

    from gan.hpo.storage import open_storage

    monkeypatch.chdir(tmp_path)
    storage = open_storage("runs/hpo/optuna.journal")
    lock = storage._backend._lock
    assert lock.acquire()  # held, as by a worker killed mid-write
    try:
        assert os.path.exists(lock._lock_file), "the lock symlink dangles"
        assert Path(os.path.realpath(lock._lock_file)) == tmp_path / "runs/hpo/optuna.journal"
    finally:
        lock.release()
