"""Judge one raw table against its rules: prepare the frame, run GX once, name every failure.

Pure (no Dagster; GX only through `gx_runner`, imported when a validation runs). The result of a
rule is a `RuleOutcome`: passed or not, its severity (see `suites.RuleKind`), a one-line summary
that names the first offending record and field, and per expectation the counts and every
failing record (id, field, offending value), which the checks list and quarantine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

import sqlalchemy as sa

from dunning_pipeline import lazy, money
from dunning_pipeline.check_severity import SeverityRule
from dunning_pipeline.quality.suites import SUITES, Expect, Rule, RuleKind, SuiteParams, columns_used, ref_column
from dunning_pipeline.warehouse import schema

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

ERROR, WARN = "ERROR", "WARN"
_UNEVALUATED = "the rule cannot be evaluated (it vouches for nothing)"
# What `_judge` does, per kind of rule, in words: the checks' descriptions state it.
SEVERITY = {
    RuleKind.STRUCTURE: SeverityRule(
        error_when=f"any row or column fails (the table cannot be trusted as a whole), or {_UNEVALUATED}"),
    RuleKind.RECORD: SeverityRule(error_when=_UNEVALUATED,
                                  warn_when="records fail: they are quarantined, the night goes on without them"),
    RuleKind.REFERENCE: SeverityRule(
        error_when=f"more than max_broken_reference_share of the references are broken, or {_UNEVALUATED}",
        warn_when="fewer are broken: those records are quarantined"),
    RuleKind.FRESHNESS: SeverityRule(error_when=_UNEVALUATED,
                                     warn_when="the newest change is older than freshness_days"),
}
FAILURE_COLUMNS = ["record_id", "field", "value", "problem", "context"]
# Expectations about the table as a whole: no failing rows to name.
TABLE_LEVEL = {"ExpectTableColumnsToMatchSet", "ExpectColumnMaxToBeBetween"}

Validator = Callable[..., list[dict]]


@dataclass
class ExpectationOutcome:
    expect: Expect
    success: bool
    checked: int | None            # rows the expectation looked at (after its row condition)
    unexpected_count: int
    unexpected_percent: float | None
    failures: pd.DataFrame         # FAILURE_COLUMNS, one row per failing record
    observed: str | None = None    # what a table-level expectation saw
    error: str | None = None       # why it could not be evaluated


@dataclass
class RuleOutcome:
    rule: Rule
    passed: bool
    severity: str
    summary: str
    rows_checked: int
    expectations: list[ExpectationOutcome] = field(default_factory=list)
    broken_share: float | None = None

    @property
    def failures(self) -> pd.DataFrame:
        frames = [e.failures for e in self.expectations if not e.failures.empty]
        return pd.concat(frames, ignore_index=True) if frames else _empty_failures()

    @property
    def quarantines(self) -> bool:
        """Whether this rule's failing records are held back from dunning."""
        return self.rule.kind in (RuleKind.RECORD, RuleKind.REFERENCE)

    @property
    def failed_records(self) -> int:
        ids = self.failures["record_id"]
        return int(ids.nunique()) + int(ids.isna().sum())


def evaluate_table(asset: str, frame: pd.DataFrame, params: SuiteParams, *,
                   reference_ids: Mapping[str, pd.Series] | None = None,
                   validate: Validator | None = None,
                   rules: Sequence[Rule] | None = None) -> list[RuleOutcome]:
    """Every rule of `asset` on `frame` (the table as the warehouse returns it).

    reference_ids: the ids of the tables the reference rules look into ({"odoo_customers": ids}).
    validate: the GX runner (default `gx_runner.validate`; its import is deferred to here).
    """
    if validate is None:
        from dunning_pipeline.quality.gx_runner import validate
    rules = SUITES[asset] if rules is None else rules
    frame = frame.reset_index(drop=True)
    built = [(rule, rule.build(params)) for rule in rules]
    expects = [e for _rule, exps in built for e in exps]
    prepared = prepare(frame, expects, reference_ids or {})
    results = validate(prepared, expects, suite_name=asset, sample_size=params.thresholds.sample_size)
    by_expect = iter(results)
    outcomes = []
    for rule, exps in built:
        outs = [_expectation_outcome(asset, frame, e, next(by_expect)) for e in exps]
        outcomes.append(_judge(rule, outs, len(frame), params))
    return outcomes


def prepare(frame: pd.DataFrame, expects: Sequence[Expect], reference_ids: Mapping[str, pd.Series]) -> pd.DataFrame:
    """The frame GX sees: only the columns the expectations read (GX copies the frame for each row
    condition), helper columns for references, blank email addresses as absent."""
    wanted = set(columns_used(expects))
    for e in expects:
        wanted.update(e.kwargs.get("column_set", ()))
        if e.gx_type == "ExpectColumnValuesToBeNull":  # the unparsed-date helper columns
            wanted.add(e.kwargs["column"])
    out = frame[[c for c in frame.columns if c in wanted]].copy(deep=False)
    for e in expects:
        if e.reference is not None:
            if e.reference not in reference_ids:
                raise ValueError(f"rule on {e.field} needs the ids of {e.reference}")
            ids = pd.Series(reference_ids[e.reference]).dropna().astype("int64")
            # The field's helper, and that of another field the row condition asks about
            # (a reconciliation's debit line, unless its credit line is found there).
            for name in [e.field, *(c for c in frame.columns if any(w.column == ref_column(c) for w in e.where))]:
                values = frame[name]
                out[ref_column(name)] = values.isin(ids).astype(object).where(values.notna(), None)
        if e.gx_type == "ExpectColumnValuesToMatchRegex" and e.field in out.columns:
            text = out[e.field].astype(object)
            out[e.field] = text.where(text.notna() & (text.astype(str).str.strip() != ""), None)
    return out


def quarantine_rows(outcomes: Sequence[RuleOutcome]) -> pd.DataFrame:
    """One row per (record, rule) of the quarantining rules that failed: record_id, check_name,
    field, value, reason. A record failing several expectations of one rule gets them joined."""
    parts = []
    for o in outcomes:
        if o.passed or not o.quarantines:
            continue
        f = o.failures
        f = f[f["record_id"].notna()]
        if f.empty:
            continue
        parts.append(pd.DataFrame({
            "record_id": f["record_id"].astype("int64").to_numpy(),
            "check_name": o.rule.name,
            "field": f["field"].to_numpy(),
            "value": f["value"].to_numpy(),
            "reason": f["problem"].to_numpy(),
        }))
    if not parts:
        return pd.DataFrame({"record_id": pd.Series([], dtype="int64"), "check_name": [], "field": [],
                             "value": [], "reason": []})
    rows = pd.concat(parts, ignore_index=True)
    dup = rows.duplicated(["record_id", "check_name"], keep=False)
    if dup.any():  # rare: join the few records with several problems, keep the rest as they are
        joined = (rows[dup].astype({"value": object}).fillna({"value": "(empty)"})
                  .groupby(["record_id", "check_name"], sort=False, as_index=False)
                  .agg({"field": _join, "value": _join, "reason": _join}))
        rows = pd.concat([rows[~dup], joined], ignore_index=True)
    return rows.sort_values(["check_name", "record_id"], kind="stable").reset_index(drop=True)


def _join(values: pd.Series) -> str:
    return "; ".join(dict.fromkeys(str(v) for v in values))


# -- one expectation ---------------------------------------------------------------------------
def _expectation_outcome(asset: str, frame: pd.DataFrame, e: Expect, r: dict) -> ExpectationOutcome:
    if r["error"] is not None:
        return ExpectationOutcome(e, False, r.get("element_count"), 0, None, _empty_failures(),
                                  error=str(r["error"]))
    if e.gx_type in TABLE_LEVEL:
        observed = _observed(e, r)
        return ExpectationOutcome(e, r["success"], len(frame), 0 if r["success"] else 1, None,
                                  _empty_failures(), observed=observed)
    positions = r["positions"] if r["positions"] is not None else np.array([], dtype=np.int64)
    count = int(r["unexpected_count"] or 0)
    return ExpectationOutcome(e, r["success"], r.get("element_count"), count, r.get("unexpected_percent"),
                              failures_frame(asset, frame, e, positions))


def _observed(e: Expect, r: dict) -> str:
    if e.gx_type == "ExpectTableColumnsToMatchSet":
        missing = ((r.get("details") or {}).get("mismatched") or {}).get("missing") or []
        return f"missing column(s): {', '.join(missing)}" if missing else "all present"
    value = r.get("observed_value")
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return f"no {e.field} at all: the table is empty"
    return f"newest {e.field}: {pd.Timestamp(value)}"


def failures_frame(asset: str, frame: pd.DataFrame, e: Expect, positions: np.ndarray) -> pd.DataFrame:
    """The failing rows at `positions`, vectorised (a million failures must not loop in Python)."""
    if len(positions) == 0:
        return _empty_failures()
    rows = frame.iloc[positions]
    ids = rows["id"] if "id" in rows.columns else pd.Series([None] * len(rows))
    value_col = e.value_column or e.field
    values = display(asset, value_col, rows[value_col]) if value_col in rows.columns \
        else pd.Series([None] * len(rows), dtype=object)
    context = pd.Series([""] * len(rows), index=rows.index, dtype=object)
    for col in e.shows:
        if col in rows.columns:
            shown = display(asset, col, rows[col]).fillna("(empty)")
            sep = np.where(context == "", "", ", ")
            context = context + sep + f"{col}=" + shown.astype(str)
    fields = values.map(named_fields).fillna(e.field) if e.field_in_value else e.field
    return pd.DataFrame({
        "record_id": pd.array(ids.to_numpy(dtype=object), dtype="Int64"),
        "field": fields.to_numpy(dtype=object) if e.field_in_value else fields,
        "value": values.to_numpy(dtype=object),
        "problem": e.label,
        "context": context.to_numpy(dtype=object),
    })


_FIELD_NAMED = re.compile(r"field '?([A-Za-z_][\w.]*)'?")


def named_fields(text: object) -> str | None:
    """The fields a parse_error names, in order ("invoice_date_due, amount_total"), or None."""
    if not isinstance(text, str):
        return None
    found = list(dict.fromkeys(_FIELD_NAMED.findall(text)))
    return ", ".join(found) if found else None


def display(asset: str, column: str, values: pd.Series) -> pd.Series:
    """Values as text for people and for the quarantine table: money as exact decimals, dates ISO,
    null as None."""
    kind = _column_kinds(asset).get(column)
    notna = values.notna()
    out = pd.Series([None] * len(values), index=values.index, dtype=object)
    if not notna.any():
        return out
    present = values[notna]
    if kind == "money":
        text = money.units_to_text(present.astype("int64"))
    elif kind == "date":
        text = pd.to_datetime(present).dt.strftime("%Y-%m-%d")
    elif kind == "datetime":
        text = pd.to_datetime(present).dt.strftime("%Y-%m-%d %H:%M:%S")
    elif pd.api.types.is_float_dtype(present.dtype) and (present == present.round()).all():
        text = present.astype("int64").astype(str)
    else:
        text = present.astype(str)
    out[notna] = text.to_numpy(dtype=object)
    return out


@cache
def _column_kinds(asset: str) -> dict[str, str]:
    table = schema.metadata.tables.get(asset)
    kinds = {}
    for col in table.columns if table is not None else ():
        if isinstance(col.type, schema.Money):
            kinds[col.name] = "money"
        elif isinstance(col.type, sa.DateTime):
            kinds[col.name] = "datetime"
        elif isinstance(col.type, sa.Date):
            kinds[col.name] = "date"
    return kinds


def _empty_failures() -> pd.DataFrame:
    return pd.DataFrame({"record_id": pd.array([], dtype="Int64"), "field": pd.Series([], dtype=object),
                         "value": pd.Series([], dtype=object), "problem": pd.Series([], dtype=object),
                         "context": pd.Series([], dtype=object)})


# -- one rule ----------------------------------------------------------------------------------
def _judge(rule: Rule, outs: list[ExpectationOutcome], rows: int, params: SuiteParams) -> RuleOutcome:
    failed = [o for o in outs if not o.success]
    if not failed:
        return RuleOutcome(rule, True, ERROR if rule.kind == RuleKind.STRUCTURE else WARN,
                           _passed_summary(rule, outs, rows), rows, outs)
    errors = [o for o in failed if o.error]
    share = None
    if errors:
        severity = ERROR  # a rule that cannot be evaluated vouches for nothing
    elif rule.kind == RuleKind.STRUCTURE:
        severity = ERROR
    elif rule.kind == RuleKind.REFERENCE:
        share = max((o.unexpected_count / o.checked) if o.checked else 0.0 for o in failed)
        severity = ERROR if share > params.thresholds.max_broken_reference_share else WARN
    else:
        severity = WARN
    return RuleOutcome(rule, False, severity, _failed_summary(rule, failed, share, params), rows, outs, share)


def _passed_summary(rule: Rule, outs: list[ExpectationOutcome], rows: int) -> str:
    if rule.kind == RuleKind.FRESHNESS and outs:
        return f"Fresh: {outs[0].observed}."
    if not outs:
        return f"Nothing to check: {rows} rows read, every stored value typed."
    return f"All {rows} rows pass {len(outs)} expectation(s)."


def _failed_summary(rule: Rule, failed: list[ExpectationOutcome], share: float | None,
                    params: SuiteParams) -> str:
    first = failed[0]
    if first.error:
        return f"Could not evaluate '{first.expect.label}': {first.error}"
    if first.expect.gx_type in TABLE_LEVEL:
        return f"{first.expect.label[0].upper()}{first.expect.label[1:]}: no, {first.observed}."
    records = pd.concat([o.failures for o in failed], ignore_index=True)["record_id"]
    n = int(records.nunique()) + int(records.isna().sum())
    f = first.failures.iloc[0]
    rid = "without id" if pd.isna(f["record_id"]) else f"id {int(f['record_id'])}"
    value = "(empty)" if f["value"] is None else repr(f["value"])
    text = (f"{n} record(s) fail; first: {rid}, field {f['field']} = {value} "
            f"(expected: {first.expect.label})")
    unknown = unknown_values(first) if rule.kind == RuleKind.STRUCTURE else ""
    if unknown:
        text += f". Unknown value(s): {unknown}"
    if share is not None:
        limit = params.thresholds.max_broken_reference_share
        text += (f". {share:.2%} of references broken "
                 f"({'above' if share > limit else 'within'} the {limit:.2%} allowed)")
    return text + "."


def unknown_values(o: ExpectationOutcome, limit: int = 10) -> str:
    """For an enumeration, the values it does not know with their row counts: "'frozen' (1 row)"."""
    if o.expect.gx_type != "ExpectColumnValuesToBeInSet" or o.expect.reference or o.failures.empty:
        return ""
    counts = o.failures["value"].value_counts(dropna=False)
    parts = [f"{v!r} ({c} row{'s' if c != 1 else ''})" for v, c in counts.head(limit).items()]
    more = len(counts) - limit
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")
