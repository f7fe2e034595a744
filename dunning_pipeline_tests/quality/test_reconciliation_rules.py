"""The suite of `odoo_reconciliations` on the clean sandbox tables, one record spoilt per case:
the rule names the record and the field at its severity. A reconciliation needs one of its two
lines among the receivable lines: the other is often a payment's line, which is not extracted."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from dunning_pipeline.quality import frames
from dunning_pipeline.quality.suites import SuiteParams
from dunning_pipeline.quality.validation import ERROR, WARN, evaluate_table
from dunning_pipeline.warehouse.store import Warehouse
from dunning_pipeline_tests.quality.conftest import AS_OF
from dunning_pipeline_tests.quality.test_rules import clean_tables, evaluate  # noqa: F401 (fixture)

REC = "odoo_reconciliations"


def _unknown_line(t) -> int:
    return int(max(t["odoo_receivable_lines"]["id"].max(), t[REC]["credit_line_id"].max())) + 1


def _payment_row(t) -> int:
    """A reconciliation of an invoice line with a payment's line (not extracted)."""
    rec, lines = t[REC], t["odoo_receivable_lines"]["id"]
    return int(rec.index[rec["debit_line_id"].isin(lines) & ~rec["credit_line_id"].isin(lines)][0])


def duplicate_id(t):
    copy = t[REC].iloc[[2]].copy()
    t[REC] = pd.concat([t[REC], copy], ignore_index=True)
    return int(copy["id"].iloc[0]), "id"


def neither_line_ours(t):
    i = _payment_row(t)
    t[REC].loc[i, "debit_line_id"] = _unknown_line(t)
    return int(t[REC].loc[i, "id"]), "debit_line_id"


def zero_amount(t):
    i = _payment_row(t)
    t[REC].loc[i, "amount"] = 0
    return int(t[REC].loc[i, "id"]), "amount"


def negative_amount_in_currency(t):
    i = _payment_row(t)
    t[REC].loc[i, "credit_amount_currency"] = -t[REC].loc[i, "credit_amount_currency"]
    return int(t[REC].loc[i, "id"]), "credit_amount_currency"


def without_max_date(t):
    i = _payment_row(t)
    t[REC].loc[i, "max_date"] = pd.NaT
    return int(t[REC].loc[i, "id"]), "max_date"


def max_date_decades_ahead(t):
    i = _payment_row(t)
    t[REC].loc[i, "max_date"] = pd.Timestamp("2206-03-01")
    return int(t[REC].loc[i, "id"]), "max_date"


CASES = {
    "duplicate_id": (duplicate_id, "unique_ids", ERROR),
    "neither_line_ours": (neither_line_ours, "line_references", WARN),
    "zero_amount": (zero_amount, "amounts_positive", WARN),
    "negative_amount_in_currency": (negative_amount_in_currency, "amounts_positive", WARN),
    "without_max_date": (without_max_date, "reconciliation_fields_present", WARN),
    "max_date_decades_ahead": (max_date_decades_ahead, "dates_plausible", WARN),
}


def test_the_clean_reconciliations_pass_every_rule_and_most_credit_sides_are_not_ours(clean_tables):
    rec = clean_tables[REC]
    assert len(rec) > 20
    outcomes = evaluate(clean_tables, REC)
    assert all(o.passed for o in outcomes.values()), [o.summary for o in outcomes.values() if not o.passed]
    # What the rule must tolerate: a payment's line on the credit side (never extracted).
    assert (~rec["credit_line_id"].isin(clean_tables["odoo_receivable_lines"]["id"])).mean() > 0.5


@pytest.mark.parametrize("name", list(CASES))
def test_the_rule_names_the_spoilt_reconciliation(clean_tables, name):
    mutate, rule, severity = CASES[name]
    tables = {a: t.copy() for a, t in clean_tables.items()}
    record_id, field_name = mutate(tables)
    outcome = evaluate(tables, REC, only=rule)[rule]
    assert not outcome.passed and outcome.severity == severity, outcome.summary
    failures = outcome.failures[outcome.failures["field"] == field_name]
    assert set(failures["record_id"].dropna().astype(int)) == {record_id}, outcome.summary


def test_a_line_of_ours_on_either_side_is_enough(clean_tables):
    """A credit note settled by a refund payment: the payment's line is the debit side, the credit
    note's line (ours) the credit side."""
    tables = {a: t.copy() for a, t in clean_tables.items()}
    rec, i = tables[REC], _payment_row(tables)
    rec.loc[i, ["debit_line_id", "credit_line_id"]] = [_unknown_line(tables), int(rec.loc[i, "debit_line_id"])]
    assert evaluate(tables, REC, only="line_references")["line_references"].passed


def test_many_reconciliations_of_unknown_lines_block(clean_tables):
    tables = {a: t.copy() for a, t in clean_tables.items()}
    tables["odoo_receivable_lines"] = tables["odoo_receivable_lines"].iloc[: len(tables["odoo_receivable_lines"]) // 3]
    outcome = evaluate(tables, REC, only="line_references")["line_references"]
    assert not outcome.passed and outcome.severity == ERROR and outcome.broken_share > 0.5


def test_a_stored_max_date_that_is_not_a_date_blocks_and_is_named(clean_tables, tmp_path):
    """Only SQLite can hold one; the table is read again with its dates as text to name it."""
    wh = Warehouse(f"sqlite:///{tmp_path / 'rec.sqlite'}")
    wh.ensure_schema()
    wh.replace(REC, clean_tables[REC])
    bad_id = int(clean_tables[REC]["id"].iloc[3])
    with wh.begin() as conn:
        conn.execute(sa.text("UPDATE odoo_reconciliations SET max_date = '2026-02-30' WHERE id = :i"), {"i": bad_id})
    frame, unparsed = frames.read_table(wh, REC)
    assert unparsed == {"max_date"}
    [outcome] = [o for o in evaluate_table(REC, frame, SuiteParams(AS_OF, unparsed_dates=unparsed),
                                           reference_ids={"odoo_receivable_lines": clean_tables["odoo_receivable_lines"]["id"]})
                 if o.rule.name == "dates_parse"]
    assert not outcome.passed and outcome.severity == ERROR
    assert list(outcome.failures[["record_id", "field", "value"]].itertuples(index=False, name=None)) == [
        (bad_id, "max_date", "2026-02-30")]
    wh.dispose()
