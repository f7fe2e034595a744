"""Exact money: amounts travel through pandas as int64 counts of 1/10,000 of a currency unit.

Four decimal places hold every ISO 4217 minor unit (EUR 2, JPY 0, KWD 3, CLF 4), integer sums
are exact, and the arithmetic stays vectorised. Amounts enter from JSON as `Decimal` (never a
binary float) and leave as `Decimal` or as a string formatted with the currency's own decimals.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from dunning_pipeline import lazy

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

SCALE = 10_000
SCALE_DIGITS = 4
# ISO 4217 currencies whose minor unit is not 2 decimals; everything else has 2.
_DECIMALS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}


class MoneyError(ValueError):
    """An amount that cannot be represented exactly."""


def currency_decimals(currency: str | None) -> int:
    return _DECIMALS.get((currency or "").upper(), 2)


def to_units(value) -> int:
    """One amount (Decimal, int, str, or float from an untrusted source) to 1/10,000 units.

    Floats are read through their shortest repr (`str(0.1) == '0.1'`), which is exactly what a
    JSON producer wrote; more than four decimals is an error, not a silent rounding.
    """
    if value is None or value is False:
        raise MoneyError("amount is missing")
    if isinstance(value, float):
        if not np.isfinite(value):
            raise MoneyError(f"amount {value!r} is not finite")
        value = repr(value)
    try:
        dec = Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:  # ValueError: a list or tuple
        raise MoneyError(f"amount {value!r} is not a number") from exc
    if not dec.is_finite():
        raise MoneyError(f"amount {value!r} is not finite")
    scaled = dec * SCALE
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"amount {value!r} has more than {SCALE_DIGITS} decimal places")
    return int(scaled)


def series_to_units(values: pd.Series) -> pd.Series:
    """A column of amounts to int64 units; raises MoneyError naming the first bad row label."""
    out = np.empty(len(values), dtype=np.int64)
    for i, (label, v) in enumerate(values.items()):
        try:
            out[i] = to_units(v)
        except MoneyError as exc:
            raise MoneyError(f"row {label!r}: {exc}") from exc
    return pd.Series(out, index=values.index, name=values.name)


def to_decimal(units: int) -> Decimal:
    return Decimal(int(units)).scaleb(-SCALE_DIGITS)


def units_to_text(units: pd.Series) -> pd.Series:
    """int64 units to exact decimal strings ('-12.3400'), vectorised, for COPY and CSV."""
    u = units.astype("int64").to_numpy()
    sign = np.where(u < 0, "-", "")
    a = np.abs(u)
    whole = (a // SCALE).astype(str)
    frac = np.char.zfill((a % SCALE).astype(str), SCALE_DIGITS)
    return pd.Series(np.char.add(np.char.add(np.char.add(sign, whole), "."), frac), index=units.index)


def format_amount(units: int, currency: str | None = None, *, with_code: bool = True) -> str:
    """Human display with the currency's own decimals and thousands separators: '1,234.50 EUR'."""
    places = currency_decimals(currency)
    quantum = Decimal(1).scaleb(-places)
    dec = to_decimal(units).quantize(quantum, rounding=ROUND_HALF_UP)
    text = f"{dec:,.{places}f}"
    return f"{text} {currency}" if (with_code and currency) else text


def format_column(units: pd.Series, currencies: pd.Series) -> list[str]:
    """A money column (int64 units, nullable) as display strings in each row's currency;
    empty for a missing amount. For previews, so it is a per-row loop over a few rows."""
    return [
        "" if pd.isna(u) else format_amount(int(u), c if isinstance(c, str) else None)
        for u, c in zip(units, currencies, strict=True)
    ]
