"""The `gan` command: errors a user can fix print one line and exit 2, no traceback."""

from __future__ import annotations

import pytest

from gan.cli import main


def test_bad_param_exits_2_naming_the_key(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  batch_size: 0\n")
    assert main(["train", "-p", str(params)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "train.batch_size" in err and "Traceback" not in err


def test_override_is_validated(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("{}\n")
    assert main(["preprocess", "-p", str(params), "-S", "preprocess.resolution=48"]) == 2
    assert "preprocess.resolution" in capsys.readouterr().err


def test_registry_list_on_empty_registry(tmp_path, capsys):
    assert (
        main(
            [
                "registry",
                "list",
                "--registry",
                str(tmp_path / "reg"),
                "-p",
                str(tmp_path / "none.yaml"),
            ]
        )
        == 0
    )
    assert "registry is empty" in capsys.readouterr().out


def test_sample_without_champion_is_a_clear_error(tmp_path, capsys):
    code = main(["sample", "--registry", str(tmp_path / "reg"), "--out", str(tmp_path / "g.png")])
    assert code == 2 and "no champion" in capsys.readouterr().err


def test_translate_missing_input_is_a_clear_error(tmp_path, capsys):
    code = main(
        ["translate", "--model", str(tmp_path / "nope"), "--direction", "AtoB",
         "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command", ["prepare", "preprocess", "train", "evaluate", "promote", "hpo", "serve"]
)
def test_every_stage_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: gan" in capsys.readouterr().out
