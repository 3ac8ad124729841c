"""What a study found, in files people and DVC read: the trials table, the best params, a plot.

`apply_best` writes the winner into params.yaml (comments and layout kept), so that
`dvc repro` trains it with the full step count.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from gan.config import HpoConfig, parse_params
from gan.errors import GanError
from gan.hpo.objective import FINAL_METRICS, reported_value
from gan.hpo.space import get_path, set_path
from gan.io import write_json, write_text


def _reason(t: optuna.trial.FrozenTrial) -> str:
    if t.state != TrialState.FAIL:
        return ""
    return t.user_attrs.get("fail_reason") or "its worker stopped without reporting (no heartbeat)"


def _best(study: optuna.Study, trials: list) -> optuna.trial.FrozenTrial:
    """The best of complete `trials` in the study's direction."""
    pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(trials, key=lambda t: t.value)


def trials_frame(study: optuna.Study, hpo: HpoConfig | None = None) -> pd.DataFrame:
    """One row per trial: state, objective, final metrics, params, why it failed, where it ran.

    With `hpo`, last_report is the report metric itself (a maximised study stores FID and
    KID reports negated; see gan.hpo.objective)."""
    rows = []
    figures = _figures(study.user_attrs.get("objective") or (hpo.objective if hpo else None))
    for t in study.get_trials(deepcopy=False):
        steps = max(t.intermediate_values, default=None)
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "value": t.value if t.state == TrialState.COMPLETE else None,
                **{f: t.user_attrs.get(f) for f in figures},
                "last_step": steps,
                "last_report": _report(t.intermediate_values.get(steps), hpo),
                **{f"params.{k}": v for k, v in t.params.items()},
                "seconds": round(t.duration.total_seconds(), 1) if t.duration else None,
                "retry_of": t.user_attrs.get("retry_of"),
                "fail_reason": _reason(t),
                "run_dir": t.user_attrs.get("run_dir"),
            }
        )
    return pd.DataFrame(rows)


def _figures(objective: str | None) -> list[str]:
    """The figures each trial keeps: FID, KID and the study's objective."""
    return list(dict.fromkeys([*FINAL_METRICS, *([objective] if objective else [])]))


def _report(value: float | None, hpo: HpoConfig | None) -> float | None:
    return value if hpo is None else reported_value(value, hpo)


def best_record(study: optuna.Study, hpo: HpoConfig) -> dict[str, Any]:
    """The best complete trial as a file's content: params as paths and as `-S` overrides."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        why = f"; trial {failed[-1].number} failed: {_reason(failed[-1])}" if failed else ""
        raise GanError(f"study {hpo.study}: no trial has completed yet (`gan hpo run`){why}")
    best = _best(study, complete)
    counts = pd.Series([t.state.name.lower() for t in study.get_trials(deepcopy=False)])
    return {
        "study": hpo.study,
        "objective": hpo.objective,
        "value": best.value,
        "trial": best.number,
        # what the study ran with (its stored settings), not what params.yaml says today
        "budget_steps": study.user_attrs.get(
            "budget_steps", (study.user_attrs.get("settings") or {}).get("budget_steps")
        )
        or hpo.budget_steps,
        "params": dict(best.params),
        "overrides": [f"train.{k}={v}" for k, v in best.params.items()],
        "metrics": {k: best.user_attrs[k] for k in _figures(hpo.objective) if k in best.user_attrs},
        "run_dir": best.user_attrs.get("run_dir"),
        "trials": counts.value_counts().to_dict(),
    }


def markdown_table(frame: pd.DataFrame) -> str:
    def fmt(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return f"{v:.4g}" if isinstance(v, float) else str(v).replace("|", "\\|")

    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join(lines) + "\n"


def plot_history(study: optuna.Study, hpo: HpoConfig, path: Path) -> None:
    """Reported metric against step per trial (pruned dashed, best thick), and objective per trial."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = _best(study, complete).number if complete else None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for t in trials:
        if not t.intermediate_values:
            continue
        steps = sorted(t.intermediate_values)
        pruned = t.state == TrialState.PRUNED
        style = {"linestyle": "--", "marker": "x", "color": "grey"} if pruned else {"marker": "o"}
        ax1.plot(
            steps,
            [reported_value(t.intermediate_values[s], hpo) for s in steps],
            lw=3 if t.number == best else 1,
            markersize=4,
            label=f"trial {t.number}" + (" (pruned)" if pruned else ""),
            **style,
        )
    ax1.set(xlabel="step", ylabel=hpo.report_metric, title="reports (pruned: grey x, best thick)")
    if ax1.lines and len(trials) <= 12:  # without lines matplotlib warns "no artists"
        ax1.legend(fontsize=7)
    done = [(t.number, t.value) for t in complete]
    if done:
        xs, ys = zip(*done, strict=True)
        ax2.scatter(xs, ys, label="complete")
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        running_best = pd.Series(ys).cummax() if maximize else pd.Series(ys).cummin()
        ax2.step(xs, running_best, where="post", label="best so far")
        ax2.legend()
        ax2.xaxis.get_major_locator().set_params(integer=True)
    ax2.set(xlabel="trial", ylabel=hpo.objective, title=f"{hpo.study}: objective")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    from gan.io import write_bytes

    write_bytes(path, buf.getvalue())


def write_results(study: optuna.Study, hpo: HpoConfig) -> dict[str, Any]:
    """best.json, trials.csv, trials.md and history.png in hpo.output; returns the best record."""
    out = Path(hpo.output)
    frame = trials_frame(study, hpo)
    write_text(out / "trials.csv", frame.to_csv(index=False))
    write_text(out / "trials.md", markdown_table(frame))
    plot_history(study, hpo, out / "history.png")
    best = best_record(study, hpo)
    write_json(out / "best.json", best)
    return best


def apply_best(params_path: str | Path, best_params: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Set train.<path> for each best param in params.yaml, keeping comments; returns changes.

    The edited file is validated before it replaces the old one, so a bad value never lands.
    """
    from ruamel.yaml import YAML

    path = Path(params_path)
    if not path.is_file():
        raise GanError(f"{path}: params file not found")
    yaml = YAML()  # round-trip: comments, order and flow-style lists are kept
    yaml.preserve_quotes = True
    yaml.representer.add_representer(float, _yaml11_float)
    yaml.representer.add_representer(type(None), _null)
    doc = yaml.load(path.read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("train"), dict):
        raise GanError(f"{path}: has no train section to apply the params to")
    changes = []
    for key, value in best_params.items():
        try:
            old = get_path(doc["train"], key)
            set_path(doc["train"], key, value)
        except KeyError:
            _insert(doc["train"], key, value)  # a default not written in the file yet
            old = None
        if old != value:
            changes.append((f"train.{key}", old, value))
    buf = io.StringIO()
    yaml.dump(doc, buf)
    import yaml as pyyaml

    parse_params(pyyaml.safe_load(buf.getvalue()), str(path))
    write_text(path, buf.getvalue())
    return changes


def _yaml11_float(representer, value: float):
    """1e-05 as 1.0e-05: PyYAML (YAML 1.1), which reads params.yaml, needs the dot for a float."""
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return representer.represent_scalar("tag:yaml.org,2002:float", text)


def _null(representer, value: None):
    """null as `null`, as params.yaml writes it (ruamel's default leaves the value empty)."""
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def _insert(section: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = section
    for part in parts[:-1]:
        if part.isdigit():
            raise GanError(f"train.{key}: the list is not in the params file; write it out first")
        node = node.setdefault(part, {})
    node[parts[-1]] = value
