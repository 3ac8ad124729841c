"""Prefect flows: thin callers of the gan/ stage functions (docs/architecture.md, 'Stages').

- ``pipeline.py``: prepare -> preprocess -> classifier -> train -> evaluate -> promote;
- ``retrain.py``: retrain only when the data changed since the champion was trained;
- ``hpo.py``: the Optuna search;
- ``serve.py``: every deployment of prefect.yaml, with its schedule, in one process.

No stage logic lives here: a task (tasks.py) is a stage of the stage table
(gan/stages.py), which says what it calls, how it is retried and cached, so a flow run,
`dvc repro` and `gan <stage>` produce the same files.
"""
