"""`gan sample`: a grid of images from the champion, a registry version, a run or export
dir, or an ONNX file `gan export` wrote (run by onnxruntime on the latents PyTorch draws)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from gan.errors import GanError
from gan.export import load_export
from gan.grid import image_format, require_finite, save_gif, save_grid
from gan.pngs import write_pngs
from gan.registry.resolve import resolve_model

MAX_IMAGES = 4096  # a 64x64 grid; more is neither viewable nor a sane PNG
MAX_SEEDS = 64
MAX_FRAMES = 1000
MAX_PNGS = 1_000_000  # --out-dir: one PNG each, generated BATCH at a time
BATCH = 256


def _check_request(
    n: int, out: str | Path | None, seed: int, truncation: float, seeds: list[int], frames: int
) -> None:
    """Refuse what cannot make a sensible picture before the model is loaded."""
    if not math.isfinite(truncation) or truncation < 0:
        raise GanError(f"--truncation must be a finite number >= 0, not {truncation}")
    if not 0 < n <= MAX_IMAGES:
        raise GanError(f"-n must be between 1 and {MAX_IMAGES}, not {n}")
    if not 1 <= frames <= MAX_FRAMES:
        raise GanError(f"--frames must be between 1 and {MAX_FRAMES}, not {frames}")
    if len(seeds) > MAX_SEEDS:
        raise GanError(f"at most {MAX_SEEDS} seeds per grid or walk, not {len(seeds)}")
    bad = [s for s in (seed, *seeds) if not 0 <= s < 2**32]
    if bad:
        raise GanError(f"seeds must be between 0 and 2**32 - 1, not {bad[0]}")
    if out is not None and Path(out).is_dir():
        raise GanError(
            f"--out {out}: is a folder; give a file name such as {Path(out) / 'samples.png'}"
        )
    if out is not None:
        image_format(out)


def _labels(
    labels: Sequence[int] | torch.Tensor | None, n: int, num_classes: int, conditional: bool
) -> torch.Tensor | None:
    """Labels repeated cyclically to n, so `--labels 0 1 2` fills a grid class by class."""
    if labels is None:
        return None
    if num_classes == 0 or not conditional:
        raise GanError("labels were given but this generator is unconditional")
    values = labels.flatten().tolist() if isinstance(labels, torch.Tensor) else list(labels)
    bad = [v for v in values if not 0 <= v < num_classes]  # before a tensor: 2**70 overflows
    if not values or bad:
        shown = f", not {bad[0]}" if bad else ""
        raise GanError(f"labels must be class indices in 0..{num_classes - 1}{shown}")
    y = torch.tensor(values, dtype=torch.long)
    return y.repeat(math.ceil(n / len(y)))[:n]


def sample(
    model: str,
    n: int,
    out: str | Path,
    seed: int = 0,
    truncation: float = 1.0,
    registry: str | Path = "registry",
    labels: Sequence[int] | torch.Tensor | None = None,
    mix: tuple[list[int], list[int]] | None = None,
    crossover: int | None = None,
    interpolate: list[int] | None = None,
    frames: int = 16,
    out_dir: str | Path | None = None,
) -> Path:
    """Generate `n` images with a fixed seed and write them as one PNG grid at `out`.

    `mix` = (row seeds, column seeds) writes a style-mixing grid instead (coarse styles from
    the rows, fine from the columns, split at `crossover`); `interpolate` = seeds writes a
    strip of `frames` steps between consecutive seeds, and the same walk as a GIF beside it.
    With `out_dir`, the `n` images are written one PNG each instead (for other FID tools).
    """
    seeds = [*(mix[0] + mix[1] if mix else []), *(interpolate or [])]
    if out_dir is not None:
        if mix is not None or interpolate is not None:
            raise GanError("--out-dir writes -n single images; --mix and --interpolate are grids")
        if not 0 < n <= MAX_PNGS:
            raise GanError(f"-n must be between 1 and {MAX_PNGS} with --out-dir, not {n}")
        _check_request(1, None, seed, truncation, seeds, frames)
    else:
        _check_request(
            n if mix is None and interpolate is None else 1, out, seed, truncation, seeds, frames
        )
    if interpolate is not None and Path(out).suffix.lower() == ".gif":
        raise GanError(f"--out {out}: --interpolate writes its GIF beside the strip; name a .png")
    if mix is not None and not (mix[0] and mix[1]):
        raise GanError("--mix needs at least one row seed and one column seed")
    if str(model).lower().endswith(".onnx"):
        if mix is not None or interpolate is not None:
            raise GanError(
                f"--model {model}: --mix and --interpolate need the PyTorch export (its "
                "folder); an ONNX file samples grids and --out-dir"
            )
        from gan.onnx_export import OnnxGenerator

        exported = OnnxGenerator(model)
        generate = exported.generate
    else:
        exported = load_export(resolve_model(model, registry))
        G, family = exported.generator, exported.family
        generate = functools.partial(family.generate, G)
    scale = max(1, 64 // exported.data.resolution)
    finite = functools.partial(require_finite, source=model, outcome="nothing written")
    with torch.inference_mode():
        if mix is not None:
            rows, cols = mix
            cut = crossover if crossover is not None else family.default_crossover(G)
            images = finite(family.mix_grid(G, rows, cols, cut, truncation))
            return save_grid(images, out, nrow=len(cols) + 1, scale=scale)
        if interpolate is not None:
            walks = len(interpolate) >= 2 or (labels is not None and len(labels) >= 2)
            if not interpolate or not walks or frames < 1:
                raise GanError(
                    "--interpolate needs two seeds (or, for BigGAN, two --labels) and --frames >= 1"
                )
            classes = None
            if labels is not None and len(labels):
                k = exported.data.num_classes
                classes = _labels(labels, len(labels), k, exported.conditional).tolist()
            walk = finite(family.interpolate(G, interpolate, frames, truncation, labels=classes))
            real = Path(out).resolve()
            if not real.exists() or real.is_file():  # not beside a device: no /dev/null.gif
                save_gif(walk, Path(out).with_suffix(".gif"), scale=scale)
            return save_grid(walk, out, nrow=len(walk), scale=scale)
        y = _labels(labels, n, exported.data.num_classes, exported.conditional)
        rng = torch.Generator().manual_seed(seed)
        if out_dir is not None:
            batches = (
                finite(generate(
                    min(BATCH, n - i), generator=rng, truncation=truncation,
                    labels=None if y is None else y[i : i + BATCH],
                ))
                for i in range(0, n, BATCH)
            )  # fmt: skip
            write_pngs(batches, out_dir)
            return Path(out_dir)
        images = finite(generate(n, generator=rng, labels=y, truncation=truncation))
    return save_grid(images, out, nrow=math.ceil(math.sqrt(n)))
