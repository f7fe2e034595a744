"""What a check shows in the Dagster UI: counts, and markdown tables naming the failing records.

Pure: values are plain Python; strings meant as markdown are `Markdown` so the Dagster layer can
wrap them. Per expectation: the GX expectation, its field, rows checked, unexpected count and
percentage, and a sample of failing ids. Per failing record (capped at `sample_size`): record id,
field, offending value, what was expected, and the other fields that explain it.
"""

from __future__ import annotations

from dunning_pipeline import lazy
from dunning_pipeline.quality.validation import RuleOutcome, unknown_values

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
pd = lazy.module("pandas")


class Markdown(str):
    """A string to render as markdown."""


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return "_(empty)_"
    text = str(value).replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= 120 else text[:119] + "…"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def metadata(outcome: RuleOutcome, sample_size: int) -> dict[str, object]:
    meta: dict[str, object] = {
        "rule_kind": outcome.rule.kind.value,
        "rows_checked": outcome.rows_checked,
        "failed_records": outcome.failed_records,
        "unexpected_count": sum(e.unexpected_count for e in outcome.expectations),
        "unexpected_percent": max((e.unexpected_percent or 0.0 for e in outcome.expectations), default=0.0),
        "expectations": Markdown(expectations_table(outcome, sample_size)),
    }
    if not outcome.passed:
        meta["failures"] = Markdown(failures_table(outcome, sample_size))
    if outcome.quarantines:
        meta["quarantined_records"] = 0 if outcome.passed else int(
            outcome.failures["record_id"].dropna().nunique())
    if outcome.broken_share is not None:
        meta["broken_reference_share"] = float(outcome.broken_share)
    unknown = "; ".join(f"{e.expect.field}: {u}" for e in outcome.expectations if (u := unknown_values(e)))
    if unknown:
        meta["unknown_values"] = unknown
    observed = "; ".join(e.observed for e in outcome.expectations if e.observed)
    if observed:
        meta["observed"] = observed
    return meta


def expectations_table(outcome: RuleOutcome, sample_size: int) -> str:
    if not outcome.expectations:
        return "_no expectation applies to this table in this run_"
    rows = []
    for e in outcome.expectations:
        ids = e.failures["record_id"].dropna().astype("int64").head(min(sample_size, 10)).tolist()
        sample = ", ".join(str(i) for i in ids) + (" …" if e.unexpected_count > len(ids) else "")
        pct = "" if e.unexpected_percent is None else f"{e.unexpected_percent:.3g}%"
        status = "error: " + e.error if e.error else ("pass" if e.success else "FAIL")
        rows.append([e.expect.label, e.expect.field, e.expect.gx_type, e.checked, e.unexpected_count, pct,
                     sample or e.observed or "", status])
    return _table(["expectation", "field", "GX expectation", "rows checked", "unexpected", "unexpected %",
                   "failing ids (sample) / observed", "result"], rows)


def failures_table(outcome: RuleOutcome, sample_size: int) -> str:
    f = outcome.failures
    if f.empty:
        return "\n\n".join(
            f"**{e.expect.label}**: {e.error or e.observed}" for e in outcome.expectations if not e.success)
    shown = f.head(sample_size)
    rows = [[None if pd.isna(r.record_id) else int(r.record_id), r.field, r.value, r.problem, r.context]
            for r in shown.itertuples(index=False)]
    text = _table(["record id", "field", "offending value", "expected", "other fields"], rows)
    if len(f) > len(shown):
        text += f"\n\n… and {len(f) - len(shown)} more failing values (all of them are in the quarantine " \
                f"table when the rule quarantines)."
    return text
