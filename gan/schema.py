"""What every params section shares: unknown keys are errors, numbers are never booleans,
and the value types several sections use (a directory-safe name, a seed, a batch bound).

gan/config.py builds params.yaml's sections on this base; gan/hpo/grammar.py its search
space, which is why the base lives in neither.
"""

from __future__ import annotations

import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
NAME_MAX = 100


def check_name(value: str) -> str:
    """A run or study name becomes one directory name: no separators, no `..`, not empty."""
    if len(value) > NAME_MAX or not NAME_PATTERN.fullmatch(value):
        shown = value if len(value) <= 40 else f"{value[:40]}..."
        raise ValueError(
            f"{shown!r} is not a valid name: it names a directory, so use letters, digits, "
            f"'.', '_' and '-', start with a letter or digit, at most {NAME_MAX} characters"
        )
    return value


Name = Annotated[str, AfterValidator(check_name)]
Seed = Annotated[int, Field(ge=0, lt=2**32)]  # what every RNG (torch, numpy, optuna) takes
MAX_BATCH = 65536


def _takes_bool(annotation: Any) -> bool | None:
    """True if a field accepts booleans, False if it wants numbers only, None otherwise."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        answers = [_takes_bool(a) for a in get_args(annotation)]
        return True if True in answers else (False if False in answers else None)
    if origin is Literal:
        values = get_args(annotation)
        if any(isinstance(v, bool) for v in values):
            return True
        return False if any(isinstance(v, int | float) for v in values) else None
    if annotation is bool:
        return True
    return False if annotation in (int, float) else None


class Section(BaseModel):
    """Base of every params section: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(
        extra="forbid", validate_default=True, frozen=False, allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        """`steps: true` is a slip, not 1: numbers are never taken from booleans."""
        field = cls.model_fields.get(info.field_name) if isinstance(v, bool) else None
        if field is not None and _takes_bool(field.annotation) is False:
            raise ValueError("must be a number, not true/false")
        return v
