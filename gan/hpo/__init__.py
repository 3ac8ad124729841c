"""`gan hpo`: the Optuna search over train params (study, objective, space, storage, report).

The study module holds the entry points; they are re-exported here so that callers write
`from gan import hpo; hpo.run(params)` without knowing the split.
"""

from gan.hpo.settings import study_settings
from gan.hpo.study import (
    TrialSeededSampler,
    Worker,
    apply,
    best,
    budget_left,
    load,
    make_pruner,
    make_sampler,
    open_study,
    prepare,
    run,
    run_one_if_left,
    state_counts,
)

__all__ = [
    "TrialSeededSampler",
    "Worker",
    "apply",
    "best",
    "budget_left",
    "load",
    "make_pruner",
    "make_sampler",
    "open_study",
    "prepare",
    "run",
    "run_one_if_left",
    "state_counts",
    "study_settings",
]
