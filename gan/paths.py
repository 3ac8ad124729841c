"""Where the pipeline's files live, derived from the few params keys that name them.

Paths params.yaml leaves unset follow the one key that names them, so pointing the
pipeline at a new folder is one edit. The data of classifier, train and evaluate is
preprocess.output; the run that evaluate and promote read is train.runs_dir/train.run.
Per dataset (preprocess.dataset, else the name of preprocess.output): the raw and processed
folders data/raw/<name> and data/processed/<name>, the classifier models/<name>/classifier
and the registry registry/<name>, so a second dataset judges and ranks its own models. A
key that is set, even to the same value, wins; dvc.yaml names the source keys in its deps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gan.config import Params

# fill(section name, {key: derived value}): sets each key the section's params leave unset
Fill = Callable[[str, dict[str, Any]], None]


def run_dir(runs_dir: str | Path, run: str) -> Path:
    return Path(runs_dir) / run


def dataset_name(dataset: str | None, processed: str) -> str:
    """The name a dataset's folders, classifier and registry go by."""
    return dataset or Path(processed).name or "data"


def derive_paths(params: Params, fill: Fill) -> None:
    """Fill every derived path, in the order each reads the one before it."""
    if params.preprocess.dataset is not None:
        own = params.preprocess.dataset
        fill("preprocess", {"input": f"data/raw/{own}", "output": f"data/processed/{own}"})
    for name in ("classifier", "train", "evaluate"):
        fill(name, {"data": params.preprocess.output})
    for name in ("evaluate", "promote"):
        fill(name, {"run_dir": str(run_dir(params.train.runs_dir, params.train.run))})
    dataset = dataset_name(params.preprocess.dataset, params.preprocess.output)
    fill("classifier", {"output": f"models/{dataset}/classifier"})
    fill("evaluate", {"classifier": params.classifier.output})
    fill("promote", {"registry": f"registry/{dataset}"})
    fill("promote", {"metrics": f"{params.evaluate.output}/metrics.json"})
