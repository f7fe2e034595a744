"""Run expectations with Great Expectations 1.x and return plain dicts.

GX is imported here, lazily, inside `validate` (its import takes seconds; the code location must
load without it). Usage analytics are switched off before the import and progress bars after;
the data context is ephemeral (in memory), so GX writes nothing to disk.

Only what our rules need comes back, as plain Python: per expectation its success, counts, the
positions of the failing rows in the frame (so the caller names records by id without GX
building a dict per row), or the error that stopped it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from itertools import count

import numpy as np
import pandas as pd

from dunning_pipeline.quality.suites import Expect, Where

# pandas datetimes are compared vectorised by GX only at nanosecond resolution, whose range is
# 1677..2262; dates beyond it are implausible anyway, so they are clipped to just inside it.
_NS_MIN = pd.Timestamp("1678-01-01")
_NS_MAX = pd.Timestamp("2261-12-31")

_names = count()
_lock = threading.Lock()


def import_gx():
    """great_expectations, imported with usage analytics off."""
    os.environ["GX_ANALYTICS_ENABLED"] = "False"
    import great_expectations as gx

    return gx


def validate(frame: pd.DataFrame, expectations: Sequence[Expect], *, suite_name: str,
             sample_size: int = 20) -> list[dict]:
    """Validate `frame` against `expectations` in one GX run; one result dict per expectation, in order.

    Each dict: success, element_count, unexpected_count, unexpected_percent, positions (np.ndarray
    of row positions in `frame`, for row-level expectations), observed_value, details, error.
    """
    if not expectations:
        return []
    gx = import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    data = gx_frame(frame)
    with _lock:  # names must be unique within a context; contexts are cheap, one per call
        uid = next(_names)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch_definition = (
        ctx.data_sources.add_pandas(f"warehouse_{uid}")
        .add_dataframe_asset(suite_name)
        .add_batch_definition_whole_dataframe("whole_table")
    )
    suite = ctx.suites.add(gx.ExpectationSuite(name=f"{suite_name}_{uid}"))
    for i, exp in enumerate(expectations):
        suite.add_expectation(_build(gx, exp, i))
    batch = batch_definition.get_batch(batch_parameters={"dataframe": data})
    result = batch.validate(suite, result_format={
        "result_format": "COMPLETE",
        "partial_unexpected_count": sample_size,
        "return_unexpected_index_query": False,
    })
    out: list[dict | None] = [None] * len(expectations)
    for res in result.results:
        out[int(res.expectation_config.meta["position"])] = _plain(res)
    missing = [expectations[i].label for i, r in enumerate(out) if r is None]
    if missing:
        raise RuntimeError(f"Great Expectations returned no result for: {'; '.join(missing)}")
    return out  # type: ignore[return-value]


def gx_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame in dtypes GX evaluates vectorised: nullable integers as float64 (NaN for null),
    datetimes at nanosecond resolution, nullable booleans as objects. Values are only compared,
    never shown from here: the caller shows the original frame's values."""
    cols = {}
    for name in frame.columns:
        s = frame[name]
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            cols[name] = s.clip(lower=_NS_MIN, upper=_NS_MAX).astype("datetime64[ns]")
        elif isinstance(s.dtype, pd.BooleanDtype):
            cols[name] = s.astype(object).where(s.notna(), None)
        elif pd.api.types.is_integer_dtype(s.dtype) and isinstance(s.dtype, pd.api.extensions.ExtensionDtype):
            cols[name] = s.astype("float64")
        else:
            cols[name] = s
    return pd.DataFrame(cols, index=pd.RangeIndex(len(frame)))


def _condition(where: Sequence[Where]):
    from great_expectations.expectations.row_conditions import Column

    cond = None
    for w in where:
        col = Column(w.column)
        if w.op == "==":
            part = col == w.value
        elif w.op == "!=":
            part = col != w.value
        elif w.op == "in":
            part = col.is_in(w.value)
        elif w.op == "not_in":
            part = col.is_not_in(w.value)
        elif w.op == "null":
            part = col.is_null()
        elif w.op == "not_null":
            part = col.is_not_null()
        else:
            raise ValueError(f"unknown row condition operator {w.op!r} on {w.column}")
        cond = part if cond is None else cond & part
    return cond


def _build(gx, exp: Expect, position: int):
    cls = getattr(gx.expectations, exp.gx_type)
    kwargs = dict(exp.kwargs)
    if exp.where:
        kwargs["row_condition"] = _condition(exp.where)
    return cls(**kwargs, meta={"position": position, "field": exp.field})


def _plain(res) -> dict:
    r = res.result or {}
    error = _error(res.exception_info)
    positions = r.get("unexpected_index_list")
    if positions is not None:
        positions = np.asarray([p for p in positions if not isinstance(p, dict)], dtype=np.int64)
    return {
        "success": bool(res.success) and error is None,
        "element_count": r.get("element_count"),
        "unexpected_count": r.get("unexpected_count"),
        "unexpected_percent": r.get("unexpected_percent"),
        "missing_count": r.get("missing_count"),
        "positions": positions,
        "observed_value": r.get("observed_value"),
        "details": r.get("details"),
        "error": error,
    }


def _error(info) -> str | None:
    """The message of an exception GX caught while evaluating (a missing column, a bad type)."""
    if not info:
        return None
    if "raised_exception" in info:
        if not info.get("raised_exception"):
            return None
        return info.get("exception_message") or "error"
    for value in info.values():  # keyed by metric when several metrics failed
        if isinstance(value, dict) and value.get("raised_exception"):
            return value.get("exception_message") or "error"
    return None
