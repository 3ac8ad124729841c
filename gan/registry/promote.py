"""The promote stage: register an evaluated run as a candidate and report the decision.

Reads the evaluate stage's metrics.json and protocol.json (side by side), the run's
run.json and export/, asks the registry to decide, and writes decision.json and a
Markdown report (with the sample grid beside it) for a person to read. A candidate whose
evaluation used an extractor too weak to judge (``extractor_skill`` below
gan.metrics.extractor_quality.WEAK_SKILL) is refused before anything is registered,
unless promote.allow_weak_extractor is set.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from gan.config import EvaluateConfig, PromoteConfig
from gan.errors import GanError
from gan.export import load_export
from gan.io import read_json, write_bytes, write_json, write_text
from gan.metrics.extractor_quality import SKILL_KEY, WEAK_SKILL
from gan.metrics.protocol import comparable_protocol
from gan.metrics.registry import figure, keyed, split_key
from gan.registry.decision import Rule
from gan.registry.store import HISTORY, Candidate, Registry
from gan.training.checkpoint import latest_checkpoint

PROTOCOL = "protocol.json"
SAMPLES = "samples.png"


def _read_mapping(path: Path) -> dict[str, Any]:
    data = read_json(path)  # GanError naming the file when missing or not JSON
    if not isinstance(data, dict):
        raise GanError(f"{path}: expected a JSON object")
    return data


def _range(name: str) -> tuple[float, float] | None:
    """The values a figure can take (gan.metrics.registry; fid_AtoB and fid@autoencoder
    follow fid); a number outside them is a bug or a hand edit, not a result. None for
    names the registry does not declare, and for unbounded figures."""
    found = figure(name)
    if found is None or (found.low, found.high) == (-math.inf, math.inf):
        return None
    return found.low, found.high


def check_metrics(metrics: dict[str, Any], primary: str, source: Path) -> None:
    """Refuse an absurd metrics file before the registry compares anything (GanError)."""
    value = metrics.get(primary)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise GanError(
            f"{source}: promote.primary_metric {primary} is {value!r}, not a finite number; "
            "re-run evaluate (nothing was registered)"
        )
    for name, v in metrics.items():
        bounds = _range(name)
        if bounds is None or isinstance(v, bool) or not isinstance(v, int | float):
            continue
        if math.isfinite(v) and not bounds[0] <= v <= bounds[1]:
            raise GanError(
                f"{source}: {name} is {v!r}, outside its possible range "
                f"[{bounds[0]:g}, {bounds[1]:g}]; nothing was registered"
            )


def check_extractor(
    metrics: dict[str, Any], allow_weak: bool, source: Path, primary: str = ""
) -> None:
    """Refuse a candidate whose `primary` metric was measured by an extractor too weak to
    judge (GanError), unless promote.allow_weak_extractor; before anything is registered,
    so allowing it later works."""
    key = keyed(SKILL_KEY, split_key(primary)[1])
    skill = metrics.get(key)
    if allow_weak or not isinstance(skill, int | float) or isinstance(skill, bool):
        return
    if not skill >= WEAK_SKILL:  # NaN too
        raise GanError(
            f"{source}: {key} is {skill:.3f}, below {WEAK_SKILL:g}: the feature extractor "
            "is too weak to judge this candidate (see evaluate's warning naming its file); "
            "retrain it (`gan classifier`, more classifier.epochs) or set "
            "promote.allow_weak_extractor: true; nothing was registered"
        )


def gather(cfg: PromoteConfig) -> Candidate:
    """Everything the registry records about the run being promoted; fails naming the file."""
    metrics_path = Path(cfg.metrics)
    metrics = _read_mapping(metrics_path)
    check_metrics(metrics, cfg.primary_metric, metrics_path)
    check_extractor(metrics, cfg.allow_weak_extractor, metrics_path, cfg.primary_metric)
    protocol = _read_mapping(metrics_path.parent / PROTOCOL)
    run_dir = Path(cfg.run_dir)
    run = _read_mapping(run_dir / "run.json")
    export_dir = run_dir / "export"
    exported = load_export(export_dir)  # a champion that cannot be loaded is worse than none
    if not all(bool(t.isfinite().all()) for t in exported.generator.state_dict().values()):
        raise GanError(f"{export_dir}: its weights hold NaN or inf; not registered")
    return Candidate(
        run_id=str(run.get("run_id") or run_dir.name),
        export_dir=export_dir,
        metrics=metrics,
        protocol=protocol,
        checkpoint=latest_checkpoint(run_dir),
        data_hash=run.get("data_hash"),
        params=run.get("params"),
    )


def promote(cfg: PromoteConfig, evaluation: EvaluateConfig | None = None) -> dict[str, Any]:
    """Run the promote stage; returns what it writes to decision.json.

    With `evaluation` (the evaluate section the candidate was measured with), a champion
    measured under another protocol is re-measured under the candidate's before comparing.
    """
    cand = gather(cfg)
    if cfg.onnx:  # before anything is registered: a missing package is one line
        from gan.onnx_export import require

        for package in ("onnx", "onnxruntime"):
            require(package, "promote.onnx")
    registry = Registry(cfg.registry)
    older = registry.root.parent / HISTORY
    if older.is_file() and not registry.history_path.exists():
        warnings.warn(
            f"{older}: a registry of the older layout (one for every dataset); this dataset's "
            f"is now {registry.root}, so move that registry's files there to keep its champion",
            stacklevel=2,
        )
    remeasure = None
    if evaluation is not None:

        def remeasure(model_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
            from gan.metrics.evaluate import measure

            m = measure(evaluation, model_dir)
            return m.metrics, m.protocol

    rule = Rule(cfg.primary_metric, cfg.mode, cfg.margin)
    record = registry.register(cand, rule, remeasure, onnx=cfg.onnx)
    if record["duplicate"]:
        record["reason"] = (
            f"this export was already registered as v{record['version']} on {record['time']} "
            f"({record['decision']}: {record['reason']}); nothing changed"
        )
    before = (
        registry.show(record["champion_before"]) if record["champion_before"] is not None else None
    )
    if before and record.get("champion_remeasured"):  # compare with what the rule compared
        before = {**before, **record["champion_remeasured"]}
    now = registry.champion()
    decision = {
        "decision": record["decision"],
        "reason": record["reason"],
        "version": record["version"],
        "run_id": record["run_id"],
        "primary_metric": cfg.primary_metric,
        "mode": cfg.mode,
        "margin": cfg.margin,
        "value": record["value"],
        "previous_champion": before["version"] if before else None,
        "previous_champion_value": before["metrics"].get(cfg.primary_metric) if before else None,
        "champion": now["version"] if now else None,
        "registry": str(registry.root),
        "registered": not record["duplicate"],
    }
    report = Path(cfg.report)
    samples = Path(cfg.metrics).parent / SAMPLES
    if samples.is_file():
        write_bytes(report / SAMPLES, samples.read_bytes())
    elif (report / SAMPLES).exists():
        (report / SAMPLES).unlink()  # never show an older run's pictures
    write_json(report / "decision.json", decision)
    write_text(report / "report.md", render_report(record, before, decision, samples.is_file()))
    return decision


def _table(rows: dict[str, dict[str, Any]], **kw: Any) -> str:
    df = pd.DataFrame(rows).astype(object)
    df = df.map(lambda v: "—" if v is None or (isinstance(v, float) and math.isnan(v)) else v)
    return df.to_markdown(**kw)


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def render_report(
    record: dict[str, Any], before: dict[str, Any] | None, decision: dict[str, Any], samples: bool
) -> str:
    """The Markdown a person reads: pictures first, then numbers, then the protocol."""
    v, primary = record["version"], decision["primary_metric"]
    cand_col = f"candidate v{v}"
    champ_col = f"champion v{before['version']}" if before else None
    better = "lower" if decision["mode"] == "min" else "higher"
    now = f"v{decision['champion']}" if decision["champion"] else "none"
    lines = [
        f"# Promotion of run `{record['run_id']}`: v{v} {record['decision']}",
        "",
        f"**{record['decision'].capitalize()}.** {record['reason']}.",
        "",
        f"Rule: {primary}, {better} is better, margin {decision['margin']:g}. Champion now: {now}.",
        "",
        f"![Samples of candidate v{v}]({SAMPLES})" if samples else "_No sample grid was found._",
        "",
        "## Metrics",
        "",
    ]
    names = list(record["metrics"]) + [
        k for k in (before["metrics"] if before else {}) if k not in record["metrics"]
    ]
    label = {k: f"**{k}** (primary)" if k == primary else k for k in names}
    rows = {cand_col: {label[k]: _fmt(record["metrics"].get(k)) for k in names}}
    if before:
        rows[champ_col] = {label[k]: _fmt(before["metrics"].get(k)) for k in names}
    lines += [_table(rows, tablefmt="github"), "", "## Evaluation protocol", ""]
    cp = _flat(comparable_protocol(record["protocol"]))
    bp = _flat(comparable_protocol(before["protocol"])) if before else {}
    keys = list(cp) + [k for k in bp if k not in cp]
    prows: dict[str, dict[str, Any]] = {cand_col: {k: _short(cp.get(k)) for k in keys}}
    if before:
        prows[champ_col] = {k: _short(bp.get(k)) for k in keys}
        prows["same"] = {k: "yes" if cp.get(k) == bp.get(k) else "**no**" for k in keys}
    lines += [_table(prows, tablefmt="github"), ""]
    return "\n".join(lines)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested protocol entries as dotted keys (reference.split), one table row each."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _short(v: Any, width: int = 16) -> Any:
    if isinstance(v, str) and len(v) > width:
        return v[:width] + "…"
    return v if not isinstance(v, dict | list) else str(v)
