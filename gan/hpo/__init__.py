"""`gan hpo`: the Optuna search over train params.

The entry points are gan.hpo.study (run, best, apply, ...); the space's grammar
(gan.hpo.grammar) is part of params.yaml's schema, so this package imports nothing:
validating params must not load Optuna.
"""
