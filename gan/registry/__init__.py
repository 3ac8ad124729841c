"""The model registry: store (history + champion), promotion rule, promote stage.

`from gan import registry; registry.Registry(...)` keeps working: the store's public API
and `resolve_model` are re-exported here. The promote stage pulls in metrics and training,
so it is imported from `gan.registry.promote` by the callers that need it.
"""

from gan.registry.decision import PROMOTED, REJECTED, Decision, Rule, decide
from gan.registry.resolve import resolve_model
from gan.registry.store import (
    CHAMPION,
    HISTORY,
    MODELS,
    ROLLBACK,
    Candidate,
    Registry,
    champion,
    git_revision,
    list_versions,
    parse_version,
    rollback,
    show,
)

__all__ = [
    "CHAMPION",
    "HISTORY",
    "MODELS",
    "PROMOTED",
    "REJECTED",
    "ROLLBACK",
    "Candidate",
    "Decision",
    "Registry",
    "Rule",
    "champion",
    "decide",
    "git_revision",
    "list_versions",
    "parse_version",
    "resolve_model",
    "rollback",
    "show",
]
