"""The `gan` command: one stage at a time, and using a trained model.

The stage subcommands come from the stage table (gan/stages.py): each reads params.yaml
(validated before any work) and calls the one function that implements the stage;
`-S section.key=value` overrides a param.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points

from gan.errors import GanError, Interrupted
from gan.messages import one_line_warnings
from gan.stages import STAGES, Stage, json_text

COMMANDS = "gan.commands"  # entry point group: name -> callable(subparsers) adding a command


def _params(args: argparse.Namespace):
    from gan.config import load_params

    return load_params(args.params, args.set)


def _print(obj) -> None:
    print(json_text(obj))


def cmd_stage(args):
    """Any stage of gan/stages.py: its function on its sections of the params (with
    --dry-run, its dry run's)."""
    dry = getattr(args, "dry_run", False)
    says = args.stage.dry_run.says if dry else args.stage.says
    line = says(args.stage.run(_params(args), dry=dry))
    if line is not None:
        print(line)


def cmd_registry(args):
    from gan import registry

    root = args.registry or _params(args).promote.registry
    if args.action == "list":
        frame = registry.list_versions(root)
        print(frame.to_string(index=False) if len(frame) else f"registry is empty: {root}")
    elif args.action == "show":
        _print(registry.show(root, args.version or "champion"))
    elif args.action == "rollback":
        record = registry.rollback(root, args.version, reason=args.reason)
        print(f"champion is now v{record['version']}")


def _registry(args: argparse.Namespace) -> str:
    """--registry, else params' promote.registry where --model names a registry version
    (a path needs no params file)."""
    from gan.registry.resolve import names_registry

    if args.registry or not names_registry(args.model):
        return args.registry or "registry"
    return _params(args).promote.registry


def cmd_sample(args):
    from gan.sample import sample

    registry_root = _registry(args)
    out = sample(
        args.model,
        args.n,
        args.out,
        seed=args.seed,
        truncation=args.truncation,
        registry=registry_root,
        labels=args.labels,
        mix=(args.rows, args.cols) if args.mix else None,
        crossover=args.crossover,
        interpolate=args.seeds if args.interpolate else None,
        frames=args.frames,
        out_dir=args.out_dir,
    )
    print(f"{args.n} PNGs in {out}" if args.out_dir else out)


def cmd_export_images(args):
    from gan.pngs import export_split

    data = args.data or _params(args).evaluate.data
    count = export_split(data, args.split, args.out)
    print(f"{count} PNGs of the {args.split} split of {data} in {args.out}")


def cmd_export(args):
    from gan.onnx_export import FORMATS, export_onnx
    from gan.registry.resolve import resolve_model

    if args.format not in FORMATS:
        raise GanError(
            f"--format {args.format}: gan export writes {', '.join(FORMATS)} "
            "(the safetensors export is what `gan train` writes)"
        )
    for path in export_onnx(resolve_model(args.model, _registry(args))):
        print(path)


def cmd_hpo(args):
    from gan.hpo import study as hpo

    params = _params(args)
    if args.action == "run":
        summary = hpo.run(params, max_trials=args.trials)
        held = ", ".join(f"{v} {k}" for k, v in summary.items() if k != "ran" and v)
        print(f"ran {summary['ran']} trials here; study {params.hpo.study} holds {held}")
    if args.action in ("run", "best"):
        best = hpo.best(params)  # also writes best.json, trials.csv/md, history.png
        print(
            f"best: trial {best['trial']}, {best['objective']} {best['value']:.4g}, "
            f"params {best['params']} (in {params.hpo.output}/best.json)"
        )
    elif args.action == "apply":
        changes = hpo.apply(args.params, params, args.best)
        for key, old, new in changes:
            print(f"{key}: {old} -> {new}")
        print(f"{args.params}: {len(changes)} value(s) changed; `dvc repro` trains the winner")


def cmd_translate(args):
    from gan.translate import translate

    registry_root = _registry(args)
    count = translate(
        args.model, args.direction, args.input, args.output, batch_size=args.batch_size,
        registry=registry_root, device=args.device,
    )  # fmt: skip
    print(f"translated {count} images into {args.output}")


def add_plugin_commands(sub: argparse._SubParsersAction) -> list[str]:
    """Add the subcommands other packages register under COMMANDS (flows/: `gan serve`).

    This is how the CLI offers flows' commands while gan/ never imports flows/.
    """
    names = []
    for ep in sorted(entry_points(group=COMMANDS), key=lambda ep: ep.name):
        ep.load()(sub)
        names.append(ep.name)
    return names


def _parser(stages: tuple[Stage, ...] = STAGES) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gan", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def stage(name: str, fn: Callable, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument(
            "-p", "--params", default="params.yaml", help="params file (default params.yaml)"
        )
        sp.add_argument(
            "-S", "--set", action="append", default=[], metavar="KEY=VALUE", help="override a param"
        )
        sp.set_defaults(fn=fn)
        return sp

    for entry in stages:  # the pipeline's stages, one subcommand each
        sp = stage(entry.name, cmd_stage, entry.help)
        sp.set_defaults(stage=entry)
        for flag in entry.flags:  # an option standing for an override (-S) of the stage
            if flag.metavar:  # with a value: `--images DIR` adds the override for DIR
                sp.add_argument(
                    flag.option, dest="set", action="append", type=flag.given,
                    metavar=flag.metavar, help=flag.help,
                )  # fmt: skip
                continue
            sp.add_argument(
                flag.option, dest="set", action="append_const", const=flag.override, help=flag.help
            )
        if entry.dry_run:
            sp.add_argument("--dry-run", action="store_true", help=entry.dry_run.help)
    r = stage("registry", cmd_registry, "list, show or roll back registry versions")
    r.add_argument("action", choices=["list", "show", "rollback"])
    r.add_argument("version", nargs="?", help="e.g. 3, v3 or champion")
    r.add_argument("--reason", default="manual rollback")
    r.add_argument("--registry", help="registry dir (default: promote.registry in params)")
    s = stage("sample", cmd_sample, "sample images from a trained generator into a PNG grid")
    s.add_argument(
        "--model",
        default="champion",
        help="champion, a registry version (v3), a run dir, an export dir or a .onnx file "
        "`gan export` wrote",
    )
    s.add_argument("-n", type=int, default=64, help="number of images in the grid")
    s.add_argument("--out", default="samples.png", help="PNG file of the grid (not a folder)")
    s.add_argument(
        "--out-dir",
        metavar="DIR",
        help="write the -n images one PNG each into this new or empty folder instead of a "
        "grid (for torch-fidelity's CLI, clean-fid or pytorch-fid; pair it with "
        "`gan export-images`)",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the latents")
    s.add_argument(
        "--truncation",
        type=float,
        default=1.0,
        help="truncation: StyleGAN2 psi around the average w (0: the average image), "
        "BigGAN threshold of the latents (0: the mean latent), DCGAN scale of z; 1 is none",
    )
    s.add_argument(
        "--labels",
        type=int,
        nargs="*",
        help="class indices for conditional models, repeated to fill n",
    )
    s.add_argument(
        "--mix",
        action="store_true",
        help="a style-mixing grid: rows give coarse styles, columns fine ones (StyleGAN2)",
    )
    s.add_argument("--rows", type=int, nargs="+", default=[1, 2, 3, 4], help="--mix row seeds")
    s.add_argument("--cols", type=int, nargs="+", default=[5, 6, 7, 8], help="--mix column seeds")
    s.add_argument(
        "--crossover",
        type=int,
        help="--mix: the first layer whose style comes from the column (default: the middle)",
    )
    s.add_argument(
        "--interpolate",
        action="store_true",
        help="a strip walking between --seeds (PNG at --out) and the same walk as a GIF",
    )
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="--interpolate seeds")
    s.add_argument("--frames", type=int, default=8, help="--interpolate steps between two seeds")
    s.add_argument("--registry", help="registry dir (default: promote.registry in params)")
    xp = stage(
        "export",
        cmd_export,
        "write the generator as ONNX beside its safetensors (checked in onnxruntime)",
    )
    xp.add_argument("--format", default="onnx", help="onnx (needs `pip install 'ganops[onnx]'`)")
    xp.add_argument(
        "--model",
        default="champion",
        help="champion, a registry version (v3), a run dir or an export dir",
    )
    xp.add_argument("--registry", help="registry dir (default: promote.registry in params)")
    ex = stage(
        "export-images",
        cmd_export_images,
        "write a split of the processed data as PNGs, for other FID tools",
    )
    ex.add_argument("--split", default="test", help="train or test (default test)")
    ex.add_argument("--out", required=True, metavar="DIR", help="new or empty folder for the PNGs")
    ex.add_argument("--data", help="processed dataset dir (default: preprocess.output in params)")
    tr = stage("translate", cmd_translate, "translate a folder of images with a CycleGAN model")
    tr.add_argument(
        "--model",
        default="champion",
        help="champion, a registry version (v3), a run dir or an export dir",
    )
    tr.add_argument("--direction", choices=["AtoB", "BtoA"], required=True)
    tr.add_argument("--input", required=True, help="folder of images (searched recursively)")
    tr.add_argument("--output", required=True, help="folder for the translated PNGs")
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--device", default="cpu")
    tr.add_argument("--registry", help="registry dir (default: promote.registry in params)")
    h = stage(
        "hpo", cmd_hpo, "Optuna search over train params: run a worker, show or apply the best"
    )
    h.add_argument(
        "action",
        choices=["run", "best", "apply"],
        help="run: a worker that runs trials (with others, on the same storage) until the "
        "study holds hpo.n_trials, then reports the best; best: write best.json, trials.csv/md "
        "and history.png of the study; apply: write the best trial's params into params.yaml",
    )
    h.add_argument(
        "--trials",
        type=int,
        help="run: stop after this many trials (default: until the study is full)",
    )
    h.add_argument(
        "--best",
        metavar="FILE",
        help="apply: params from this best.json (default: the study's best)",
    )
    add_plugin_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with one_line_warnings():
            args.fn(args)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at exit
    except BrokenPipeError:  # `gan registry show | head` stopped reading: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except GanError as exc:  # one `error:` line per problem (params: one per bad key)
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full or read-only disk under a write gan.io does not own
        from gan.io import disk_error

        if (error := disk_error(exc)) is None:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Interrupted as exc:  # stopped cleanly, e.g. training after saving a checkpoint
        print(f"stopped: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("stopped: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
