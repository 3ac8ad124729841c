"""The grammar of `hpo.space`: how one searched train param is written in params.yaml.

A range (float or int, log scale or stepped) or a list of choices, checked on its own
here; whether its path exists in the train section, and whether its bounds are valid
values there, is checked against the train config (gan/hpo/space.py). Pydantic only:
validating params.yaml must not import Optuna.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from gan.schema import Section


class SearchParam(Section):
    """One searched train param: a float or int range (log scale or stepped) or choices."""

    type: Literal["float", "int", "categorical"] = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0.0)
    choices: list[bool | int | float | str | None] | None = None

    @model_validator(mode="before")
    @classmethod
    def _choices_mean_categorical(cls, v: Any) -> Any:
        if isinstance(v, dict) and "choices" in v and "type" not in v:
            return {**v, "type": "categorical"}
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SearchParam:
        if self.type == "categorical":
            if not self.choices or any(x is not None for x in (self.low, self.high, self.step)):
                raise ValueError("categorical: give a non-empty choices list and no low/high/step")
            if self.log:
                raise ValueError("categorical: log does not apply")
            return self
        if self.choices is not None:
            raise ValueError(f"{self.type}: choices apply to categorical params only")
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"{self.type}: needs low < high")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("log scale needs low > 0 and no step")
        if self.type == "int" and not all(
            float(x).is_integer() for x in (self.low, self.high, self.step or 1)
        ):
            raise ValueError("int: low, high and step must be whole numbers")
        return self


def default_space() -> dict[str, SearchParam]:
    """Both learning rates (log scale) and both beta1s."""
    lr = {"low": 2e-5, "high": 2e-3, "log": True}
    beta1 = {"low": 0.0, "high": 0.9}
    return {
        k: SearchParam.model_validate(v)
        for k, v in {
            "optim.g_lr": lr,
            "optim.d_lr": lr,
            "optim.g_betas.0": beta1,
            "optim.d_betas.0": beta1,
        }.items()
    }
