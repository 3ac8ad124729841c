"""An offline `dvc plots show`: DVC's HTML page with vega, vega-lite and vega-embed inlined.

dvc-render's page loads those three scripts from a CDN, so without internet its charts are
blank. `python -m gan.vega_template` (run by `make setup`) packs the versions dvc-render
names from the npm registry (`npm pack`, which checks each package's integrity hash),
inlines their build/*.min.js into a page of the same shape without the `{scripts}`
placeholder (which is where dvc-render puts its CDN tags), writes it into the virtual
environment (.venv/share/vega/: the page 0.8 MB, the npm tarballs 6 MB; not committed) and
points this checkout's DVC at it in .dvc/config.local (`plots.html_template`).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from gan.errors import GanError
from gan.io import write_text

CDN = re.compile(r'<script src="https://cdn\.jsdelivr\.net/npm/([\w-]+)@([\d.]+)"></script>')
PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <title>DVC Plot</title>
    <meta charset="utf-8">
{inline}
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def cdn_packages() -> list[tuple[str, str]]:
    """(npm name, version) of every script dvc-render's vega page loads from the CDN."""
    from dvc_render.vega import VegaRenderer

    found = CDN.findall(VegaRenderer.SCRIPTS)
    if len(found) != len(re.findall(r"<script", VegaRenderer.SCRIPTS)):
        raise GanError(f"dvc-render's vega scripts are not all npm CDN links: {found}")
    return found


def fetch(packages: list[tuple[str, str]], into: Path) -> list[Path]:
    """The packages' npm tarballs in `into`, packed from the registry unless already there."""
    into.mkdir(parents=True, exist_ok=True)
    tarballs = []
    for name, version in packages:
        tgz = into / f"{name}-{version}.tgz"
        if not tgz.is_file():
            try:
                subprocess.run(
                    ["npm", "pack", f"{name}@{version}", "--pack-destination", str(into)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
            except FileNotFoundError:
                raise GanError("npm not found: it fetches vega for offline plots") from None
            except subprocess.CalledProcessError as exc:
                raise GanError(f"npm pack {name}@{version} failed: {exc.stderr[-500:]}") from None
        tarballs.append(tgz)
    return tarballs


def script_of(tgz: Path, name: str) -> str:
    """package/build/<name>.min.js of an npm tarball, safe to inline in a <script>."""
    with tarfile.open(tgz) as tar:
        member = tar.extractfile(f"package/build/{name}.min.js")
        if member is None:
            raise GanError(f"{tgz}: no package/build/{name}.min.js")
        js = member.read().decode("utf-8")
    if any(p in js for p in PLACEHOLDERS):
        raise GanError(f"{tgz}: holds a dvc-render placeholder; it cannot be inlined")
    return js.replace("</script", "<\\/script")  # the same string to JS, no end tag to HTML


def page(scripts: list[str]) -> str:
    inline = "\n".join(f"    <script>{js}</script>" for js in scripts)
    return PAGE.replace("{inline}", inline)


def install(repo: Path, out: Path) -> Path:
    """Write the offline template at `out` and point the DVC repository `repo` at it."""
    packages = cdn_packages()
    tarballs = fetch(packages, out.parent)
    write_text(
        out, page([script_of(t, name) for t, (name, _) in zip(tarballs, packages, strict=True)])
    )
    target = Path(out).resolve()
    dvc_dir = (repo / ".dvc").resolve()
    if not dvc_dir.is_dir():
        raise GanError(f"{repo}: not a DVC repository (no .dvc/)")
    try:  # relative to .dvc/, as DVC reads it, so the checkout can move
        setting = str(target.relative_to(dvc_dir.parent).as_posix())
        setting = f"../{setting}"
    except ValueError:
        setting = str(target)
    subprocess.run(
        [sys.executable, "-m", "dvc", "config", "--local", "plots.html_template", setting],
        cwd=repo,
        check=True,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=".", help="the DVC repository (default: here)")
    parser.add_argument(
        "--out", default=".venv/share/vega/template.html", help="where the template goes"
    )
    args = parser.parse_args(argv)
    try:
        out = install(Path(args.repo), Path(args.out))
    except GanError as exc:
        print(f"offline plots: {exc}", file=sys.stderr)
        return 2
    print(f"dvc plots show: offline template {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
