"""Folders of single PNGs for other FID tools, and the CLI help that explains them."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from PIL import Image
from test_promote import make_run

from gan.cli import _parser, main
from gan.data.shards import load_split


def test_sample_out_dir_writes_one_png_per_image(tmp_path, capsys):
    export = make_run(tmp_path, "first", seed=1) / "export"
    out = tmp_path / "fake"
    assert main(["sample", "--model", str(export), "-n", "300", "--out-dir", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names[0] == "000000.png" and names[-1] == "000299.png" and len(names) == 300
    with Image.open(out / "000000.png") as img:
        assert img.size == (16, 16) and img.mode == "L"
    # a second call into the same folder would mix two sets of images
    assert main(["sample", "--model", str(export), "-n", "3", "--out-dir", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert len(list(out.iterdir())) == 300


def test_out_naming_a_folder_is_an_error_not_a_file_inside_it(tmp_path, capsys):
    export = make_run(tmp_path, "first", seed=1) / "export"
    folder = tmp_path / "grids"
    folder.mkdir()
    assert main(["sample", "--model", str(export), "--out", str(folder)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert list(folder.iterdir()) == []


def test_export_images_writes_the_split_pixel_for_pixel(tmp_path, digits16, capsys):
    out = tmp_path / "test-pngs"
    args = ["export-images", "--data", str(digits16), "--split", "test", "--out", str(out)]
    assert main([*args, "-p", str(tmp_path / "none.yaml")]) == 0
    split = load_split(digits16, "test")
    files = sorted(out.iterdir())
    assert len(files) == len(split)
    for i in (0, len(split) - 1):
        pixels = torch.from_numpy(np.array(Image.open(files[i])))
        assert torch.equal(pixels, split.images[i, 0])
    assert main([*args, "--split", "nope", "-p", str(tmp_path / "none.yaml")]) == 2
    assert "no split 'nope'" in capsys.readouterr().err


def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("command", ["sample", "serve", "export-images", "hpo"])
def test_every_option_says_what_it_does(command):
    parser = _subparser(command)
    assert parser.description
    for action in parser._actions:
        assert action.help, f"gan {command} {action.option_strings or action.dest}: no help"


def test_hpo_help_describes_run(capsys):
    with pytest.raises(SystemExit):
        main(["hpo", "run", "--help"])
    assert "run: a worker that runs trials" in capsys.readouterr().out
