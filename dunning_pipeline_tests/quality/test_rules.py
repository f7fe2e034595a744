"""Rules violated in ways no source sends through the extraction (a duplicate or null key, a
missing column, an unknown move type the extraction filters out, a comment of an unknown ticket),
and the thresholds: each case spoils one record of the clean sandbox tables, evaluates that table
and expects the rule to name the record and the field at the right severity. The clean tables
pass every rule (test_sandbox_faults)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pandas as pd
import pytest

from dunning_pipeline.quality import frames
from dunning_pipeline.quality.suites import EMAIL_PATTERN, SUITES, RuleKind, SuiteParams
from dunning_pipeline.quality.thresholds import Thresholds
from dunning_pipeline.quality.validation import ERROR, SEVERITY, WARN, evaluate_table
from dunning_pipeline_tests.quality.conftest import AS_OF, RAW_ASSETS


@pytest.fixture(scope="module")
def clean_tables(clean_run) -> dict[str, pd.DataFrame]:
    return {a: frames.read_table(clean_run.warehouse, a)[0] for a in RAW_ASSETS}


def evaluate(tables, asset, thresholds=None, as_of=AS_OF, only: str | None = None):
    """Outcomes by rule name: of every rule of `asset`, or of the rule `only` (fewer GX expectations)."""
    refs = {a: t["id"] for a, t in tables.items()}
    rules = [r for r in SUITES[asset] if only in (None, r.name)]
    outs = evaluate_table(asset, tables[asset], SuiteParams(as_of, thresholds or Thresholds()),
                          reference_ids=refs, rules=rules)
    return {o.rule.name: o for o in outs}


def _row(frame: pd.DataFrame, mask) -> int:
    """Position of the first row matching `mask`."""
    return int(frame.index[mask][0])


def _posted_invoice(t):
    inv = t["odoo_invoices"]
    return _row(inv, (inv["state"] == "posted") & (inv["move_type"] == "out_invoice")
                & (inv["amount_residual"] > 0))


def _credit_note(t):
    inv = t["odoo_invoices"]
    return _row(inv, (inv["state"] == "posted") & (inv["move_type"] == "out_refund"))


# Each mutation spoils the tables in place and returns (record id, field) the rule must name.
def duplicate_id(t):
    inv = t["odoo_invoices"]
    copy = inv.iloc[[3]].copy()
    copy["name"] = "INV/COPY/1"
    t["odoo_invoices"] = pd.concat([inv, copy], ignore_index=True)
    return int(copy["id"].iloc[0]), "id"


def null_id(t):
    cus = t["odoo_customers"].copy()
    cus["id"] = cus["id"].astype("Int64")
    cus.loc[5, "id"] = pd.NA
    t["odoo_customers"] = cus
    return None, "id"


def unknown_move_type(t):
    inv = t["odoo_invoices"]
    i = _posted_invoice(t)
    inv.loc[i, "move_type"] = "out_invoice_v2"
    return int(inv.loc[i, "id"]), "move_type"


def comment_of_unknown_ticket(t):
    com = t["zendesk_comments"]
    com.loc[2, "ticket_id"] = int(t["zendesk_tickets"]["id"].max()) + 1000
    return int(com.loc[2, "id"]), "ticket_id"


def unknown_commercial_partner(t):
    inv = t["odoo_invoices"]
    i = _posted_invoice(t)
    inv["commercial_partner_id"] = inv["commercial_partner_id"].astype("Int64")
    inv.loc[i, "commercial_partner_id"] = int(t["odoo_customers"]["id"].max()) + 77
    return int(inv.loc[i, "id"]), "commercial_partner_id"


def many_unknown_partners(t):
    """Half the customers missing: the customers table itself is incomplete."""
    cus = t["odoo_customers"]
    used = set(t["odoo_invoices"]["partner_id"].dropna().astype(int))
    gone = sorted(used)[: len(used) // 2]
    t["odoo_customers"] = cus[~cus["id"].isin(gone)].reset_index(drop=True)
    inv = t["odoo_invoices"]
    return int(inv.loc[inv["partner_id"] == gone[0], "id"].iloc[0]), "partner_id"


def posted_without(column: str):
    """A mutation emptying `column` of a posted invoice."""
    def mutate(t):
        inv = t["odoo_invoices"]
        i = _posted_invoice(t)
        inv[column] = inv[column].astype("Int64")
        inv.loc[i, column] = pd.NA
        return int(inv.loc[i, "id"]), column
    return mutate


def invoice_residual_signed_above_total(t):
    inv = t["odoo_invoices"]
    i = _posted_invoice(t)
    inv.loc[i, "amount_residual_signed"] = inv.loc[i, "amount_total_signed"] + 10_000
    return int(inv.loc[i, "id"]), "amount_residual_signed"


def credit_note_residual_beyond_total(t):
    inv = t["odoo_invoices"]
    i = _credit_note(t)
    inv.loc[i, "amount_residual_signed"] = 2 * inv.loc[i, "amount_total_signed"] - 10_000
    return int(inv.loc[i, "id"]), "amount_residual_signed"


def due_date_decades_ahead(t):
    inv = t["odoo_invoices"]
    i = _posted_invoice(t)
    inv.loc[i, "invoice_date_due"] = pd.Timestamp("2046-03-31")
    return int(inv.loc[i, "id"]), "invoice_date_due"


def due_before_invoice(t):
    inv = t["odoo_invoices"]
    i = _posted_invoice(t)
    inv.loc[i, "invoice_date_due"] = inv.loc[i, "invoice_date"] - pd.Timedelta(days=3)
    return int(inv.loc[i, "id"]), "invoice_date_due"


def customer_without_commercial_partner(t):
    cus = t["odoo_customers"]
    cus["commercial_partner_id"] = cus["commercial_partner_id"].astype("Int64")
    cus.loc[8, "commercial_partner_id"] = pd.NA
    return int(cus.loc[8, "id"]), "commercial_partner_id"


def ticket_updated_far_in_future(t):
    tic = t["zendesk_tickets"]
    tic.loc[1, "updated_at"] = pd.Timestamp("2226-03-01 10:00:00")
    return int(tic.loc[1, "id"]), "updated_at"


def duplicate_line_id(t):
    lines = t["odoo_receivable_lines"]
    copy = lines.iloc[[4]].copy()
    t["odoo_receivable_lines"] = pd.concat([lines, copy], ignore_index=True)
    return int(copy["id"].iloc[0]), "id"


def line_of_unknown_move(t):
    lines = t["odoo_receivable_lines"]
    lines.loc[3, "move_id"] = int(t["odoo_invoices"]["id"].max()) + 500
    return int(lines.loc[3, "id"]), "move_id"


def line_without_due_date(t):
    lines = t["odoo_receivable_lines"]
    lines.loc[6, "date_maturity"] = pd.NaT
    return int(lines.loc[6, "id"]), "date_maturity"


@dataclass
class Case:
    mutate: Callable
    asset: str
    rule: str
    severity: str
    thresholds: Thresholds = field(default_factory=Thresholds)


CASES = {
    "duplicate_id": Case(duplicate_id, "odoo_invoices", "unique_ids", ERROR),
    "null_id": Case(null_id, "odoo_customers", "unique_ids", ERROR),
    "unknown_move_type": Case(unknown_move_type, "odoo_invoices", "known_move_types", ERROR),
    "comment_of_unknown_ticket": Case(comment_of_unknown_ticket, "zendesk_comments", "ticket_references", WARN),
    "unknown_commercial_partner": Case(unknown_commercial_partner, "odoo_invoices", "partner_references", WARN),
    "many_unknown_partners": Case(many_unknown_partners, "odoo_invoices", "partner_references", ERROR),
    "one_unknown_partner_above_a_zero_share": Case(
        unknown_commercial_partner, "odoo_invoices", "partner_references", ERROR,
        Thresholds(max_broken_reference_share=0.0)),
    "posted_without_commercial_partner": Case(
        posted_without("commercial_partner_id"), "odoo_invoices", "posted_fields_present", WARN),
    "posted_without_residual": Case(
        posted_without("amount_residual"), "odoo_invoices", "posted_fields_present", WARN),
    "invoice_residual_signed_above_total": Case(
        invoice_residual_signed_above_total, "odoo_invoices", "amounts_consistent", WARN),
    "credit_note_residual_beyond_total": Case(
        credit_note_residual_beyond_total, "odoo_invoices", "amounts_consistent", WARN),
    "due_date_decades_ahead": Case(due_date_decades_ahead, "odoo_invoices", "dates_plausible", WARN),
    "due_before_invoice": Case(due_before_invoice, "odoo_invoices", "dates_plausible", WARN),
    "customer_without_commercial_partner": Case(
        customer_without_commercial_partner, "odoo_customers", "customer_fields_present", WARN),
    "ticket_updated_far_in_future": Case(ticket_updated_far_in_future, "zendesk_tickets", "dates_plausible", WARN),
    "duplicate_line_id": Case(duplicate_line_id, "odoo_receivable_lines", "unique_ids", ERROR),
    "line_of_unknown_move": Case(line_of_unknown_move, "odoo_receivable_lines", "move_references", WARN),
    "line_without_due_date": Case(line_without_due_date, "odoo_receivable_lines", "instalment_fields_present", WARN),
}


@pytest.mark.parametrize("name", list(CASES))
def test_rule_names_the_spoilt_record(clean_tables, name):
    case = CASES[name]
    tables = {a: t.copy() for a, t in clean_tables.items()}
    record_id, field_name = case.mutate(tables)
    outcome = evaluate(tables, case.asset, case.thresholds, only=case.rule)[case.rule]
    assert not outcome.passed
    assert outcome.severity == case.severity, outcome.summary
    stated = SEVERITY[outcome.rule.kind]  # what the check's description says it does
    assert stated.warn_when if outcome.severity == WARN else stated.error_when
    failures = outcome.failures[outcome.failures["field"] == field_name]
    if record_id is None:
        assert failures["record_id"].isna().sum() == 1 and "without id" in outcome.summary
    else:
        assert record_id in set(failures["record_id"].dropna().astype(int)), outcome.summary


def test_missing_column_blocks_and_names_the_column(clean_tables):
    tables = dict(clean_tables)
    tables["odoo_invoices"] = clean_tables["odoo_invoices"].drop(columns=["currency"])
    outcomes = evaluate(tables, "odoo_invoices")
    assert not outcomes["required_columns"].passed
    assert outcomes["required_columns"].severity == ERROR
    assert "missing column(s): currency" in outcomes["required_columns"].summary
    # rules that read the column cannot vouch for anything: they fail as ERROR too
    assert outcomes["currency_codes"].severity == ERROR and not outcomes["currency_codes"].passed
    assert "Could not evaluate" in outcomes["currency_codes"].summary
    assert outcomes["known_states"].passed


def test_due_before_invoice_is_accepted_when_configured(clean_tables):
    tables = {a: t.copy() for a, t in clean_tables.items()}
    record_id, _ = due_before_invoice(tables)
    strict = evaluate(tables, "odoo_invoices", only="dates_plausible")["dates_plausible"]
    assert record_id in set(strict.failures["record_id"].astype(int))
    lenient = evaluate(tables, "odoo_invoices", Thresholds(allow_due_before_invoice=True),
                       only="dates_plausible")["dates_plausible"]
    assert lenient.passed, lenient.summary


def test_freshness_warns_when_the_newest_change_is_older_than_configured(clean_tables):
    newest = clean_tables["odoo_invoices"]["write_date"].max()
    later = (newest + timedelta(days=6)).date()
    stale = evaluate(clean_tables, "odoo_invoices", as_of=later, only="freshness")["freshness"]
    assert not stale.passed and stale.severity == WARN
    assert f"newest write_date: {newest}" in stale.summary
    lenient = evaluate(clean_tables, "odoo_invoices", Thresholds(freshness_days=7), as_of=later,
                       only="freshness")["freshness"]
    assert lenient.passed, lenient.summary


def test_an_empty_table_is_not_fresh_but_breaks_no_other_rule(clean_tables):
    tables = dict(clean_tables)
    tables["zendesk_tickets"] = clean_tables["zendesk_tickets"].iloc[0:0]
    outcomes = evaluate(tables, "zendesk_tickets")
    assert not outcomes["freshness"].passed and "empty" in outcomes["freshness"].summary
    assert all(o.passed for name, o in outcomes.items() if name != "freshness")


def test_records_outside_a_rule_are_not_flagged(clean_tables):
    """A draft without number or due date, a named company's nameless contact, a blank email."""
    tables = {a: t.copy() for a, t in clean_tables.items()}
    inv = tables["odoo_invoices"]
    i = _posted_invoice(tables)
    inv.loc[i, ["state", "name"]] = ["draft", "/"]
    inv.loc[i, "invoice_date_due"] = pd.NaT
    cus = tables["odoo_customers"]
    contact = _row(cus, cus["parent_id"].notna())
    cus.loc[contact, "name"] = None
    users = tables["zendesk_users"]
    users.loc[0, "email"] = " "
    assert all(o.passed for o in evaluate(tables, "odoo_invoices").values() if o.rule.name != "known_states")
    assert evaluate(tables, "odoo_customers", only="customer_fields_present")["customer_fields_present"].passed
    assert evaluate(tables, "zendesk_users", only="emails_well_formed")["emails_well_formed"].passed


@pytest.mark.parametrize("address", [
    "info@example.com", "Info@Mueller-Logistik.De", "jürgen.groß@müller.de", "a.b+dunning@sub.example.co.uk",
    "Jane Doe <jane@example.com>", '"Doe, Jane" <jane@example.com>', "a@example.com, b@example.org",
    "a@example.com; Jane <b@example.org>",
])
def test_email_pattern_accepts_addresses_as_odoo_and_zendesk_hold_them(address):
    assert re.search(EMAIL_PATTERN, address)


@pytest.mark.parametrize("address", [
    "info(at)example.com", "jane@", "@example.com", "jane@example", "jane doe@example.com",
    "jane@@example.com", "jane@example.c", "a@example.com,, b@example.org", "Jane <jane@example>",
])
def test_email_pattern_rejects_malformed_addresses(address):
    assert not re.search(EMAIL_PATTERN, address)


def test_the_iso_4217_list_holds_real_codes_only():
    from dunning_pipeline import money
    from dunning_pipeline.quality import iso4217

    assert all(re.fullmatch(r"[A-Z]{3}", c) for c in iso4217.CODES)
    assert not iso4217.CURRENT & iso4217.WITHDRAWN
    assert {"EUR", "USD", "GBP", "CHF", "JPY", "XCG", "ZWG", "HRK"} <= iso4217.CODES
    assert set(money._DECIMALS) <= iso4217.CODES  # every currency money.py knows the decimals of
    assert not {"XTS", "XXX", "EURO", "XYZ"} & iso4217.CODES


def test_every_rule_fails_with_error_when_it_cannot_be_evaluated_as_its_description_says(clean_tables):
    """The checks are blocking because each kind of rule can give an ERROR: one that cannot be
    evaluated vouches for nothing. A validator that fails every expectation shows it, per rule."""
    def broken(frame, expects, **_kw):
        return [{"error": "metric could not be computed", "success": False, "element_count": len(frame)}
                for _ in expects]

    refs = {a: t["id"] for a, t in clean_tables.items()}
    seen = set()
    for asset in SUITES:
        for o in evaluate_table(asset, clean_tables[asset], SuiteParams(AS_OF), reference_ids=refs, validate=broken):
            if o.expectations:
                assert (o.passed, o.severity) == (False, ERROR), (asset, o.rule.name)
                assert SEVERITY[o.rule.kind].can_error
                seen.add(o.rule.kind)
    assert seen == set(RuleKind)
