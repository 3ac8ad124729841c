"""What a flow run leaves in the Prefect UI: the evaluation report and the decision table.

The Markdown report shows the sample grid inline (a data URI, so it needs no file server;
its path is given too) above the metrics; the table puts the candidate beside the champion
it was measured against. Both are rendered from what the stages returned and wrote.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import pandas as pd
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from gan import registry

REPORT_KEY = "gan-evaluation"
DECISION_KEY = "gan-promotion"
RETRAIN_KEY = "gan-retrain"
MAX_INLINE_BYTES = 2_000_000  # larger grids are linked by path, not embedded


def _clean(v: Any) -> Any:
    """JSON-safe and readable: NaN/inf become None, floats get 6 significant digits."""
    if isinstance(v, float):
        return float(f"{v:.6g}") if math.isfinite(v) else None
    return v


def image_markdown(path: Path, alt: str) -> str:
    """The PNG inline as a data URI (when it exists and is small) plus its path."""
    if not path.is_file():
        return f"_No sample grid at `{path}`._"
    data = path.read_bytes()
    where = f"`{path.resolve()}`"
    if len(data) > MAX_INLINE_BYTES:
        return f"Sample grid: {where} ({len(data) // 1024} KiB, too large to embed)."
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    return f"![{alt}]({uri})\n\n{where}"


def evaluation_report(
    run: dict[str, Any],
    evaluation: dict[str, Any],
    decision: dict[str, Any],
    samples: Path,
    report: str | None = None,
) -> str:
    """Markdown: headline decision, sample grid, metrics table, run facts."""
    primary = decision["primary_metric"]
    version = f"v{decision['version']}"
    metrics = evaluation["metrics"]
    table = pd.DataFrame(
        {
            "metric": [f"**{k}** (primary)" if k == primary else k for k in metrics],
            "value": [_clean(v) for v in metrics.values()],
        }
    ).to_markdown(index=False, tablefmt="github")
    facts = [
        ("run", run.get("run_id")),
        ("family", run.get("family")),
        ("steps", run.get("steps")),
        ("data hash", str(run.get("data_hash"))[:16]),
        ("train seconds", run.get("seconds")),
        ("export", run.get("export")),
        ("promotion report", report),
    ]
    facts_md = pd.DataFrame(
        [(k, v) for k, v in facts if v is not None], columns=["", "value"]
    ).to_markdown(index=False, tablefmt="github")
    return "\n".join(
        [
            f"# Candidate {version}: {decision['decision']}",
            "",
            f"**{decision['decision'].capitalize()}.** {decision['reason']}.",
            "",
            "## Samples",
            "",
            image_markdown(samples, f"samples of candidate {version}"),
            "",
            "## Metrics",
            "",
            table,
            "",
            "## Run",
            "",
            facts_md,
            "",
        ]
    )


def decision_rows(decision: dict[str, Any]) -> list[dict[str, Any]]:
    """The candidate and the champion it was compared with, one row each."""
    metric = decision["primary_metric"]
    rows = [
        {
            "model": "candidate",
            "version": f"v{decision['version']}",
            "run_id": decision["run_id"],
            metric: _clean(decision["value"]),
            "decision": decision["decision"],
            "reason": decision["reason"],
            "champion now": decision["champion"] == decision["version"],
        }
    ]
    prev = decision.get("previous_champion")
    if prev is not None:
        before = registry.show(decision["registry"], prev)
        rows.append(
            {
                "model": "champion before",
                "version": f"v{prev}",
                "run_id": before.get("run_id"),
                metric: _clean(decision.get("previous_champion_value")),
                "decision": before.get("decision"),
                "reason": before.get("reason"),
                "champion now": decision["champion"] == prev,
            }
        )
    return rows


def publish(
    run: dict[str, Any],
    evaluation: dict[str, Any],
    decision: dict[str, Any],
    samples: Path,
    report: str | None = None,
) -> None:
    """Create both artifacts in the current flow run."""
    create_markdown_artifact(
        evaluation_report(run, evaluation, decision, samples, report),
        key=REPORT_KEY,
        description=f"evaluation of {run.get('run_id')}",
    )
    create_table_artifact(
        decision_rows(decision),
        key=DECISION_KEY,
        description=f"promotion decision for v{decision['version']}",
    )


def retrain_skipped(reason: str) -> None:
    create_markdown_artifact(
        f"# Retraining skipped\n\n{reason}.\n", key=RETRAIN_KEY, description="retrain decision"
    )
