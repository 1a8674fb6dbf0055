"""The position limits: the original guide's units (shares, BRL) beside the fractions the project had.

``MAX_POSITION_SIZE`` is the most shares in one position, ``MAX_LOSS_PER_TRADE`` the most BRL lost if the
stop is hit, ``PROFIT_TARGET`` the BRL gain at which the position is taken. The ``*_FRACTION`` keys are the
same limits relative to the capital or the entry price. Every limit that is set applies (tools/risk.py; the
tighter binds and the record says which). A value that only makes sense in the other unit is refused with
a message naming both keys, so ``MAX_POSITION_SIZE=0.02`` never becomes "0 shares" or "2% of the capital"
silently.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

# setting -> (its variable, the variable of the same limit in the other unit)
OTHER_UNIT = {"max_position_size": ("MAX_POSITION_SIZE", "MAX_POSITION_FRACTION"),
              "max_loss_per_trade": ("MAX_LOSS_PER_TRADE", "MAX_LOSS_FRACTION"),
              "profit_target": ("PROFIT_TARGET", "PROFIT_TARGET_FRACTION"),
              "max_position_fraction": ("MAX_POSITION_FRACTION", "MAX_POSITION_SIZE"),
              "max_loss_fraction": ("MAX_LOSS_FRACTION", "MAX_LOSS_PER_TRADE"),
              "profit_target_fraction": ("PROFIT_TARGET_FRACTION", "PROFIT_TARGET")}
MEANING = {"max_position_size": "the most shares in one position (a whole number, e.g. 1000)",
           "max_loss_per_trade": "the most BRL lost if the stop is hit (e.g. 500)",
           "profit_target": "the BRL gain at which the position is taken (e.g. 1000)",
           "max_position_fraction": "the most of CAPITAL in one position, as a fraction",
           "max_loss_fraction": "the most of CAPITAL lost if the stop is hit, as a fraction",
           "profit_target_fraction": "the take-profit distance from the entry price, as a fraction"}
FRACTION_CAP = {"max_position_fraction": 1.0, "max_loss_fraction": 0.5, "profit_target_fraction": 5.0}


def _other_unit(field: str, value: float) -> ValueError:
    key, other = OTHER_UNIT[field]
    unit = "an amount in BRL" if other in ("MAX_LOSS_PER_TRADE", "PROFIT_TARGET") else \
        "a number of shares" if other == "MAX_POSITION_SIZE" else "a fraction"
    return ValueError(f"{key} is {MEANING[field]}; {value:g} only makes sense as {unit}: set {other}={value:g} "
                      f"instead (or give {key} in its own unit)")


def _number(v: Any) -> float | None:
    """A number from YAML or an environment string; None when unset or not a number (pydantic says why)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


class RiskSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    capital: float = Field(100_000.0, gt=0, le=1e12)
    max_position_size: int | None = None  # shares (the guide's unit); None: not set
    max_loss_per_trade: float | None = Field(None, le=1e12, allow_inf_nan=False)  # BRL
    profit_target: float | None = Field(None, le=1e12, allow_inf_nan=False)  # BRL
    max_position_fraction: float = 0.10  # of CAPITAL
    max_loss_fraction: float = 0.02  # of CAPITAL
    profit_target_fraction: float = 0.06  # of the entry price
    atr_stop_multiple: float = Field(1.5, gt=0.0, le=20.0)
    min_reward_risk: float = Field(1.5, ge=0.0, le=20.0)
    max_volatility: float = Field(0.80, gt=0.0, le=10.0)
    max_drawdown: float = Field(0.60, gt=0.0, le=1.0)
    lookback_bars: int = Field(252, ge=20, le=5000)
    risk_free_rate: float = Field(0.10, ge=-0.5, le=1.0)
    lot_size: int = Field(100, ge=1, le=100_000)

    @field_validator("max_position_size", mode="before")
    @classmethod
    def _whole_shares(cls, v: Any) -> Any:
        n = _number(v)
        if n is None:
            return v
        if 0 < n < 1:
            raise _other_unit("max_position_size", n)
        if n <= 0 or n != int(n) or n > 1e12:
            raise ValueError("MAX_POSITION_SIZE is a number of shares: a positive whole number, e.g. 1000")
        return int(n)

    @field_validator("max_loss_per_trade", "profit_target")
    @classmethod
    def _brl(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is not None and v <= 0:
            raise ValueError(f"{OTHER_UNIT[info.field_name][0]} is an amount in BRL and must be positive")
        if v is not None and v < 1:
            raise _other_unit(info.field_name, v)
        return v

    @field_validator("max_position_fraction", "max_loss_fraction", "profit_target_fraction")
    @classmethod
    def _fraction(cls, v: float, info: ValidationInfo) -> float:
        cap = FRACTION_CAP[info.field_name]
        if v >= 1.0 and v > cap:
            raise _other_unit(info.field_name, v)
        if not 0.0 < v <= cap:  # NaN fails here too
            raise ValueError(f"{OTHER_UNIT[info.field_name][0]} must be a fraction above 0 and at most {cap:g}")
        return v
