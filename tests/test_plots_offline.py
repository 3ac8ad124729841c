"""`dvc plots show` renders without a network: vega inlined from npm packages, not a CDN.

The real dvc writes the page from the real dvc.yaml and params; node then runs only the
page's own scripts and renders each chart to SVG. The vega packages come from the npm
registry (as `make setup` gets them), or from the checkout's .venv/share/vega if it has them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO
from test_pipeline_dvc import run

from gan import vega_template

# the page's inline scripts in a bare JS context (no window, no DOM, no network), then every
# chart's spec compiled by vega-lite and rendered by vega to SVG
RENDER = r"""
const fs = require("fs"), vm = require("vm");
const page = fs.readFileSync(process.argv[1], "utf8");
const ctx = vm.createContext({ console, setTimeout, clearTimeout, Promise });
ctx.self = ctx;
for (const m of page.matchAll(/<script>([\s\S]*?)<\/script>/g)) vm.runInContext(m[1], ctx);
const specs = [...page.matchAll(/var spec = ([\s\S]*?);\s*vegaEmbed\(/g)].map(m => JSON.parse(m[1]));
(async () => {
  const plots = [];
  for (const spec of specs) {
    const view = new ctx.vega.View(ctx.vega.parse(ctx.vegaLite.compile(spec).spec), {renderer: "none"});
    const svg = await view.toSVG();
    plots.push({paths: (svg.match(/<path/g) || []).length, titles: [...svg.matchAll(/<text[^>]*>([^<]*)</g)].map(t => t[1])});
  }
  console.log(JSON.stringify({embed: typeof ctx.vegaEmbed, plots}));
})().catch(e => { console.error(e); process.exit(1); });
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    if shutil.which("npm") is None and not (REPO / ".venv/share/vega").is_dir():
        pytest.skip("neither npm nor vendored vega packages: nothing to inline")
    root = tmp_path_factory.mktemp("plots")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, root / name)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    run(["dvc", "init", "-q"], root)
    log = root / "runs/digits-dcgan/log.csv"
    log.parent.mkdir(parents=True)
    log.write_text("step,loss_D_main,loss_G_main,img_per_s\n50,1.3,0.7,810\n100,1.1,0.9,790\n")
    snapshots = log.parent / "dvclive/plots/metrics/snapshot_fid.tsv"  # train.metrics_every's
    snapshots.parent.mkdir(parents=True)
    snapshots.write_text("step\tsnapshot_fid\n50\t40.2\n100\t31.5\n")
    vendor = root / "vendor"
    vendor.mkdir()
    for tgz in (REPO / ".venv/share/vega").glob("*.tgz"):
        shutil.copy(tgz, vendor)
    vega_template.install(root, vendor / "template.html")
    run(["dvc", "plots", "show"], root)
    return root


def test_the_page_loads_nothing_from_the_network(repo):
    html = (repo / "dvc_plots/index.html").read_text()
    assert "vegaEmbed(" in html  # the charts are there
    assert not re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html)
    assert "<script src" not in html and "<link" not in html and "cdn." not in html
    assert re.search(r"\[plots\]\s+html_template = \.\./vendor/template\.html",
                     (repo / ".dvc/config.local").read_text())  # fmt: skip


@pytest.mark.skipif(shutil.which("node") is None, reason="node renders the page's scripts")
def test_its_own_scripts_render_every_chart(repo):
    out = subprocess.run(
        ["node", "-e", RENDER, str(repo / "dvc_plots/index.html")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    shown = json.loads(out.stdout)
    assert shown["embed"] == "function" and len(shown["plots"]) == 3  # losses, img/s, FID
    for plot in shown["plots"]:
        assert plot["paths"] > 0 and "step" in plot["titles"]


def test_versions_follow_dvc_render():
    from dvc_render.vega import VegaRenderer

    packages = vega_template.cdn_packages()
    assert [name for name, _ in packages] == ["vega", "vega-lite", "vega-embed"]
    assert all(f"{n}@{v}" in VegaRenderer.SCRIPTS for n, v in packages)
