"""The data-quality rules of each raw table, described as data (no Great Expectations import).

Each `Rule` becomes one Dagster asset check on its asset and is made of Great Expectations
expectations (`Expect`: the GX class name and its arguments), built per run because some
arguments depend on the run (the as-of date, the thresholds). `gx_runner` turns them into GX
objects at run time, so loading the code location never pays GX's import.

How a failed rule is handled depends on its kind:
- STRUCTURE: the table cannot be trusted as a whole (missing columns, duplicate or null keys,
  an enumeration value the rules do not know). ERROR, blocking: downstream assets do not run.
- RECORD: one record is wrong but the others are fine. WARN: the record is quarantined (left
  out of dunning, listed in the check) until it is fixed in the source.
- REFERENCE: a record points to a customer / user / ticket we do not have. Quarantined like a
  RECORD problem while the broken share is at most `max_broken_reference_share`; above it, the
  other table is probably incomplete: ERROR, blocking.
- FRESHNESS: the newest change is older than `freshness_days`. WARN; nothing quarantined.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from dunning_pipeline.quality import iso4217
from dunning_pipeline.quality.thresholds import Thresholds

# Odoo account.move selections (16 to 19; `blocked` is new in 18) and Zendesk enumerations.
MOVE_TYPES = ("entry", "out_invoice", "out_refund", "in_invoice", "in_refund", "out_receipt", "in_receipt")
MOVE_STATES = ("draft", "posted", "cancel")
PAYMENT_STATES = ("not_paid", "in_payment", "paid", "partial", "reversed", "invoicing_legacy", "blocked")
TICKET_STATUSES = ("new", "open", "pending", "hold", "solved", "closed", "deleted")
USER_ROLES = ("end-user", "agent", "admin")
# The sign of the company-currency (`*_signed`) amounts of customer documents (the ones the
# extraction reads): invoices and receipts positive, credit notes negative.
POSITIVE_MOVE_TYPES = ("out_invoice", "out_receipt")
NEGATIVE_MOVE_TYPES = ("out_refund",)

# A well-formed address list as Odoo and mail clients write it: "a@x.com",
# "Jane Doe <a@x.com>", several joined by "," or ";". Unicode letters allowed (IDN, local parts).
_ADDR = r"[\w.!#$%&'*+/=?^`{|}~-]+@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,}"
_NAME = r'(?:"[^"]*"|[^<>@,;"])*'  # a display name; quoted, it may hold "," and ";"
_ONE = rf"(?:{_ADDR}|{_NAME}<{_ADDR}>)"
EMAIL_PATTERN = rf"^\s*{_ONE}(?:\s*[,;]\s*{_ONE})*\s*$"

INVOICES, CUSTOMERS, LINES = "odoo_invoices", "odoo_customers", "odoo_receivable_lines"
RECONCILIATIONS = "odoo_reconciliations"
TICKETS, USERS, COMMENTS = "zendesk_tickets", "zendesk_users", "zendesk_comments"
ASSETS = (INVOICES, CUSTOMERS, LINES, RECONCILIATIONS, TICKETS, USERS, COMMENTS)


class RuleKind(StrEnum):
    STRUCTURE = "structure"
    RECORD = "record"
    REFERENCE = "reference"
    FRESHNESS = "freshness"


@dataclass(frozen=True)
class Where:
    """One row condition (conditions of an expectation are AND-ed): op is ==, !=, in, not_in,
    null, not_null."""

    column: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class Expect:
    """One GX expectation, without GX: its class name in `great_expectations.expectations`,
    its arguments, and how a failure is told to an accountant."""

    gx_type: str
    kwargs: dict
    field: str                       # the field to fix in the source
    label: str                       # what is expected, in words
    where: tuple[Where, ...] = ()    # only rows matching all of these are checked
    shows: tuple[str, ...] = ()      # fields shown beside the offending value
    reference: str | None = None     # asset whose ids `field` must be among
    value_column: str | None = None  # column holding the value to show (default: field)
    field_in_value: bool = False     # the value names the field(s) to fix ("field 'x'": parse_error)


@dataclass(frozen=True)
class SuiteParams:
    as_of: date
    thresholds: Thresholds = field(default_factory=Thresholds)
    # Temporal columns with stored values that are not dates (found while reading the table).
    unparsed_dates: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rule:
    asset: str
    name: str
    kind: RuleKind
    description: str
    build: Callable[[SuiteParams], list[Expect]]
    references: tuple[str, ...] = ()  # other assets the rule reads


def columns_used(expects: Sequence[Expect]) -> list[str]:
    """The table columns a list of expectations reads (to read no more than that)."""
    cols: dict[str, None] = {"id": None}
    for e in expects:
        for key in ("column", "column_A", "column_B"):
            if isinstance(e.kwargs.get(key), str):
                cols[e.kwargs[key]] = None
        for c in e.kwargs.get("column_list", ()):
            cols[c] = None
        for c in (e.field, *e.shows, *(w.column for w in e.where)):
            cols[c] = None
    return [c for c in cols if not c.startswith("_")]


def ref_column(field_name: str) -> str:
    """The helper column telling whether `field_name`'s value exists in the referenced table."""
    return f"_{field_name}_found"


def unparsed_column(field_name: str) -> str:
    """The helper column holding a stored value of `field_name` that is not a date."""
    return f"_{field_name}_unparsed"


# -- building blocks ---------------------------------------------------------------------------
def _shift_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _not_null(col: str, label: str, where=(), shows=()) -> Expect:
    return Expect("ExpectColumnValuesToNotBeNull", {"column": col}, col, label, tuple(where), tuple(shows))


def _in_set(col: str, values: Sequence, label: str, where=(), shows=()) -> Expect:
    return Expect("ExpectColumnValuesToBeInSet", {"column": col, "value_set": sorted(values)}, col, label,
                  tuple(where), tuple(shows))


def _at_least(col: str, minimum, label: str, where=(), shows=()) -> Expect:
    return Expect("ExpectColumnValuesToBeBetween", {"column": col, "min_value": minimum}, col, label,
                  tuple(where), tuple(shows))


def _at_most(col: str, maximum, label: str, where=(), shows=()) -> Expect:
    return Expect("ExpectColumnValuesToBeBetween", {"column": col, "max_value": maximum}, col, label,
                  tuple(where), tuple(shows))


def _a_at_least_b(a: str, b: str, label: str, field_name: str, where=(), shows=()) -> Expect:
    return Expect("ExpectColumnPairValuesAToBeGreaterThanB",
                  {"column_A": a, "column_B": b, "or_equal": True, "ignore_row_if": "either_value_is_missing"},
                  field_name, label, tuple(where), (*shows, *(c for c in (a, b) if c != field_name)))


def _found_in(col: str, target: str, label: str) -> Expect:
    return Expect("ExpectColumnValuesToBeInSet", {"column": ref_column(col), "value_set": [True]}, col,
                  label, reference=target)


def _email(col: str, shows=()) -> Expect:
    return Expect("ExpectColumnValuesToMatchRegex", {"column": col, "regex": EMAIL_PATTERN}, col,
                  f"{col} is a well-formed email address (or a list of them)", shows=tuple(shows))


POSTED = (Where("state", "==", "posted"),)


# -- rule factories shared by the tables -------------------------------------------------------
def _required_columns(asset: str, columns: Sequence[str]) -> Rule:
    def build(_p: SuiteParams) -> list[Expect]:
        return [Expect("ExpectTableColumnsToMatchSet", {"column_set": list(columns), "exact_match": False},
                       ", ".join(columns), "the columns the checks and the dunning engine read are present")]
    return Rule(asset, "required_columns", RuleKind.STRUCTURE,
                f"Blocking: the columns {', '.join(columns)} are present.", build)


def _unique_ids(asset: str) -> Rule:
    def build(_p: SuiteParams) -> list[Expect]:
        return [
            _not_null("id", "every record has an id"),
            Expect("ExpectColumnValuesToBeUnique", {"column": "id"}, "id", "ids are unique"),
        ]
    return Rule(asset, "unique_ids", RuleKind.STRUCTURE,
                "Blocking: the key `id` is never null and never repeated.", build)


def _known_values(asset: str, name: str, col: str, values: Sequence[str], what: str) -> Rule:
    def build(_p: SuiteParams) -> list[Expect]:
        return [_in_set(col, values, f"{col} is one of {', '.join(values)}")]
    return Rule(asset, name, RuleKind.STRUCTURE,
                f"Blocking: {what} `{col}` is one of {', '.join(values)}. An unknown value (a new "
                f"source version adding one) is named in the result, so the rules can be taught it.",
                build)


def _dates_plausible(asset: str, columns: Sequence[str], extra: Callable[[SuiteParams], list[Expect]] | None = None,
                     extra_text: str = "", shows: tuple[str, ...] = ()) -> Rule:
    def build(p: SuiteParams) -> list[Expect]:
        t = p.thresholds
        low = datetime.combine(_shift_years(p.as_of, -t.plausible_years_past), time.min)
        high = datetime.combine(_shift_years(p.as_of, t.plausible_years_future), time.max.replace(microsecond=0))
        out = [Expect("ExpectColumnValuesToBeBetween", {"column": c, "min_value": low, "max_value": high}, c,
                      f"{c} lies between {low.date()} and {high.date()} "
                      f"({t.plausible_years_past} years before and {t.plausible_years_future} after the as-of date)",
                      shows=shows)
               for c in columns]
        return out + (extra(p) if extra else [])
    return Rule(asset, "dates_plausible", RuleKind.RECORD,
                f"Quarantines records whose {', '.join(columns)} lie decades away from the run's as-of "
                f"date (plausible_years_past / plausible_years_future){extra_text}.", build)


def _dates_parse(asset: str, columns: Sequence[str]) -> Rule:
    def build(p: SuiteParams) -> list[Expect]:
        return [Expect("ExpectColumnValuesToBeNull", {"column": unparsed_column(c)}, c,
                       f"{c} holds a date", value_column=unparsed_column(c))
                for c in columns if c in p.unparsed_dates]
    return Rule(asset, "dates_parse", RuleKind.STRUCTURE,
                f"Blocking: every stored {', '.join(columns)} is a date (a value that is not would "
                "break every reader of the table).", build)


def _freshness(asset: str, col: str) -> Rule:
    def build(p: SuiteParams) -> list[Expect]:
        days = p.thresholds.freshness_days
        since = datetime.combine(p.as_of - timedelta(days=days), time.min)
        return [Expect("ExpectColumnMaxToBeBetween", {"column": col, "min_value": since}, col,
                       f"the newest {col} is on or after {since.date()} ({days} days before the as-of date)")]
    return Rule(asset, "freshness", RuleKind.FRESHNESS,
                f"Warns when the newest `{col}` is more than `freshness_days` days before the run's as-of "
                "date: the source may have stopped syncing.", build)


def _fields_parse(asset: str, shows: tuple[str, ...], source: str, examples: str) -> Rule:
    def build(_p: SuiteParams) -> list[Expect]:
        return [Expect("ExpectColumnValuesToBeNull", {"column": "parse_error"}, "parse_error",
                       f"every field has the type {source} documents and storable text", shows=shows,
                       field_in_value=True)]
    return Rule(asset, "fields_parse", RuleKind.RECORD,
                f"Quarantines records one of whose fields did not have the type {source} documents "
                f"({examples}): the field is stored empty and `parse_error` names it; the extraction "
                "itself goes on. Text holding a lone surrogate, a NUL or U+FFFD (bytes that were not "
                "valid UTF-8) is stored with U+FFFD, and the record held back the same way.", build)


_ODOO_PARSE = ("a date that does not parse, an amount that is not a number or beyond what NUMERIC(19,4) "
               "holds, a many2one that is not [id, name]")
_ZENDESK_PARSE = ("a list where text is expected, a timestamp that does not parse, a `via.channel` that is "
                  "neither a name nor a via id")


# -- odoo_invoices -----------------------------------------------------------------------------
INVOICE_COLUMNS = ("id", "name", "move_type", "state", "payment_state", "partner_id", "commercial_partner_id",
                   "company_id", "currency", "company_currency", "invoice_date", "invoice_date_due",
                   "amount_total", "amount_residual", "amount_total_signed", "amount_residual_signed",
                   "write_date")
INVOICE_DATES = ("invoice_date", "invoice_date_due", "create_date", "write_date")


def _unique_invoice_numbers(p: SuiteParams) -> list[Expect]:
    numbered = POSTED + (Where("name", "not_null"), Where("name", "!=", "/"))
    return [Expect("ExpectCompoundColumnsToBeUnique", {"column_list": ["company_id", "name"]}, "name",
                   "a posted invoice number is used once per company", numbered, ("company_id",))]


def _posted_fields(p: SuiteParams) -> list[Expect]:
    shows = ("state", "move_type")
    return [
        _not_null("name", "a posted invoice has a number", POSTED, shows),
        Expect("ExpectColumnValuesToNotBeInSet", {"column": "name", "value_set": ["/"]}, "name",
               'a posted invoice has a number other than "/"', POSTED, shows),
        _not_null("invoice_date_due", "a posted invoice has a due date", POSTED, ("name",)),
        _not_null("currency", "a posted invoice has a currency", POSTED, ("name",)),
        _not_null("partner_id", "a posted invoice has a partner", POSTED, ("name",)),
        _not_null("commercial_partner_id", "a posted invoice has a commercial partner", POSTED, ("name",)),
        _not_null("amount_total", "a posted invoice has a total", POSTED, ("name",)),
        _not_null("amount_residual", "a posted invoice has a residual", POSTED, ("name",)),
    ]


def _amounts(p: SuiteParams) -> list[Expect]:
    plus = (Where("move_type", "in", list(POSITIVE_MOVE_TYPES)),)
    minus = (Where("move_type", "in", list(NEGATIVE_MOVE_TYPES)),)
    doc = ("name", "currency")
    signed = ("name", "move_type", "company_currency")
    return [
        _at_least("amount_total", 0, "amount_total is not negative", shows=doc),
        _at_least("amount_residual", 0, "amount_residual is not negative", shows=(*doc, "amount_total")),
        _a_at_least_b("amount_total", "amount_residual", "amount_residual is at most amount_total",
                      "amount_residual", shows=doc),
        _at_least("amount_total_signed", 0, "amount_total_signed is not negative on an invoice", plus, signed),
        _at_least("amount_residual_signed", 0, "amount_residual_signed is not negative on an invoice", plus, signed),
        _a_at_least_b("amount_total_signed", "amount_residual_signed",
                      "amount_residual_signed is at most amount_total_signed on an invoice",
                      "amount_residual_signed", plus, signed),
        _at_most("amount_total_signed", 0, "amount_total_signed is not positive on a credit note", minus, signed),
        _at_most("amount_residual_signed", 0, "amount_residual_signed is not positive on a credit note", minus,
                 signed),
        _a_at_least_b("amount_residual_signed", "amount_total_signed",
                      "amount_residual_signed lies between amount_total_signed and 0 on a credit note",
                      "amount_residual_signed", minus, signed),
    ]


def _currencies(p: SuiteParams) -> list[Expect]:
    return [_in_set(c, iso4217.CODES, f"{c} is an ISO 4217 currency code", shows=("name",))
            for c in ("currency", "company_currency")]


def _partners(p: SuiteParams) -> list[Expect]:
    return [_found_in("partner_id", CUSTOMERS, "the invoice partner is among the Odoo customers"),
            _found_in("commercial_partner_id", CUSTOMERS,
                      "the invoice commercial partner is among the Odoo customers")]


def _due_after_invoice(p: SuiteParams) -> list[Expect]:
    if p.thresholds.allow_due_before_invoice:
        return []
    return [_a_at_least_b("invoice_date_due", "invoice_date", "the due date is not before the invoice date",
                          "invoice_date_due", shows=("name",))]


INVOICE_RULES = (
    _required_columns(INVOICES, INVOICE_COLUMNS),
    _unique_ids(INVOICES),
    Rule(INVOICES, "unique_invoice_numbers", RuleKind.STRUCTURE,
         "Blocking: a posted invoice number (other than \"/\") appears once per company; a duplicate "
         "would make reminders and dispute matching ambiguous.", _unique_invoice_numbers),
    _known_values(INVOICES, "known_move_types", "move_type", MOVE_TYPES, "the move type"),
    _known_values(INVOICES, "known_states", "state", MOVE_STATES, "the state"),
    _known_values(INVOICES, "known_payment_states", "payment_state", PAYMENT_STATES, "the payment state"),
    _dates_parse(INVOICES, INVOICE_DATES),
    Rule(INVOICES, "posted_fields_present", RuleKind.RECORD,
         'Quarantines posted invoices without a number other than "/", a due date, a currency, a partner, '
         "a commercial partner or their amounts.", _posted_fields),
    Rule(INVOICES, "amounts_consistent", RuleKind.RECORD,
         "Quarantines invoices whose totals are negative or whose residual is not between 0 and the "
         "total; the company-currency (`*_signed`) amounts are positive on invoices and negative on "
         "credit notes. (Amounts are exact integers of 1/10,000 once extracted, so always finite: NaN, "
         "infinity or an amount beyond NUMERIC(19,4) is stored empty and quarantined by `fields_parse`.)", _amounts),
    Rule(INVOICES, "currency_codes", RuleKind.RECORD,
         "Quarantines invoices whose currency or company currency is not an ISO 4217 code.", _currencies),
    Rule(INVOICES, "partner_references", RuleKind.REFERENCE,
         "Quarantines invoices whose partner or commercial partner is not among the extracted customers; "
         "blocking when more than `max_broken_reference_share` of them are broken.",
         _partners, references=(CUSTOMERS,)),
    _dates_plausible(INVOICES, INVOICE_DATES, _due_after_invoice,
                     ", and invoices due before they were issued (unless `allow_due_before_invoice`)",
                     ("name",)),
    _fields_parse(INVOICES, ("name",), "Odoo", _ODOO_PARSE),
    _freshness(INVOICES, "write_date"),
)

# -- odoo_customers ----------------------------------------------------------------------------
CUSTOMER_COLUMNS = ("id", "name", "email", "commercial_partner_id", "write_date")


def _customer_fields(p: SuiteParams) -> list[Expect]:
    # Odoo lets a contact of a company (an invoice or delivery address) go without a name.
    return [_not_null("name", "a customer without a parent company has a name", (Where("parent_id", "null"),)),
            _not_null("commercial_partner_id", "a customer has a commercial partner", shows=("name",))]


CUSTOMER_RULES = (
    _required_columns(CUSTOMERS, CUSTOMER_COLUMNS),
    _unique_ids(CUSTOMERS),
    _dates_parse(CUSTOMERS, ("write_date",)),
    Rule(CUSTOMERS, "customer_fields_present", RuleKind.RECORD,
         "Quarantines customers without a commercial partner (dunning is per commercial partner), and "
         "companies or individuals (partners without a parent) without a name.",
         _customer_fields),
    Rule(CUSTOMERS, "emails_well_formed", RuleKind.RECORD,
         "Quarantines customers whose email, where present, is not a well-formed address (or list of them).",
         lambda p: [_email("email", ("name",))]),
    _dates_plausible(CUSTOMERS, ("write_date",), shows=("name",)),
    _fields_parse(CUSTOMERS, ("name",), "Odoo", _ODOO_PARSE),
)



# -- odoo_receivable_lines ---------------------------------------------------------------------
LINE_COLUMNS = ("id", "move_id", "date_maturity", "amount_residual", "amount_residual_currency", "balance",
                "amount_currency")
LINE_DATES = ("date_maturity", "write_date")


def _line_fields(p: SuiteParams) -> list[Expect]:
    shows = ("move_id",)
    return [_not_null("date_maturity", "an instalment has a due date", shows=shows),
            _not_null("amount_residual", "an instalment has a residual in company currency", shows=shows),
            _not_null("amount_residual_currency", "an instalment has a residual in invoice currency", shows=shows)]


LINE_RULES = (
    _required_columns(LINES, LINE_COLUMNS),
    _unique_ids(LINES),
    _dates_parse(LINES, LINE_DATES),
    Rule(LINES, "instalment_fields_present", RuleKind.RECORD,
         "Quarantines receivable lines without a due date (date_maturity) or residuals; their invoice is "
         "then aged on its other instalments, or on its own due date.", _line_fields),
    Rule(LINES, "move_references", RuleKind.REFERENCE,
         "Quarantines receivable lines whose move is not among the extracted invoices; blocking when more "
         "than `max_broken_reference_share` of them are broken.",
         lambda p: [_found_in("move_id", INVOICES, "the line's move is among the Odoo invoices")],
         references=(INVOICES,)),
    _dates_plausible(LINES, ("date_maturity",), shows=("move_id",)),
    _fields_parse(LINES, ("move_id",), "Odoo", _ODOO_PARSE),
)

# -- odoo_reconciliations ----------------------------------------------------------------------
RECONCILIATION_COLUMNS = ("id", "debit_line_id", "credit_line_id", "company_id", "company_currency", "amount",
                          "debit_amount_currency", "credit_amount_currency", "max_date")
RECONCILIATION_DATES = ("max_date", "create_date", "write_date")
_BOTH_LINES = ("debit_line_id", "credit_line_id")


def _reconciliation_fields(p: SuiteParams) -> list[Expect]:
    return [_not_null("debit_line_id", "a reconciliation has a debit line", shows=("credit_line_id",)),
            _not_null("credit_line_id", "a reconciliation has a credit line", shows=("debit_line_id",)),
            _not_null("amount", "a reconciliation has an amount in company currency", shows=_BOTH_LINES),
            _not_null("max_date", "a reconciliation has the day it counts from (max_date)", shows=_BOTH_LINES)]


def _reconciliation_amounts(p: SuiteParams) -> list[Expect]:
    shows = (*_BOTH_LINES, "company_currency")
    return [Expect("ExpectColumnValuesToBeBetween", {"column": "amount", "min_value": 0, "strict_min": True},
                   "amount", "the amount settled is above 0", shows=shows),
            _at_least("debit_amount_currency", 0, "debit_amount_currency is not negative", shows=shows),
            _at_least("credit_amount_currency", 0, "credit_amount_currency is not negative", shows=shows)]


def _reconciliation_lines(p: SuiteParams) -> list[Expect]:
    # The credit side is mostly a payment's line, which we do not extract; the debit side is the
    # invoice's line, unless the reconciliation settles a credit note (its line is the credit
    # side) against a refund payment. So: a line of ours on one side at least.
    return [Expect("ExpectColumnValuesToBeInSet", {"column": ref_column("debit_line_id"), "value_set": [True]},
                   "debit_line_id", "the debit line, or else the credit line, is one of the Odoo receivable lines",
                   where=(Where(ref_column("credit_line_id"), "!=", True),), shows=("credit_line_id",),
                   reference=LINES)]


RECONCILIATION_RULES = (
    _required_columns(RECONCILIATIONS, RECONCILIATION_COLUMNS),
    _unique_ids(RECONCILIATIONS),
    _dates_parse(RECONCILIATIONS, RECONCILIATION_DATES),
    Rule(RECONCILIATIONS, "reconciliation_fields_present", RuleKind.RECORD,
         "Quarantines reconciliations without a debit line, a credit line, an amount or max_date: they "
         "cannot be placed on a line or dated.", _reconciliation_fields),
    Rule(RECONCILIATIONS, "amounts_positive", RuleKind.RECORD,
         "Quarantines reconciliations whose amount (company currency) is not above 0 or whose amount in a "
         "line's currency is negative. (Amounts are exact integers of 1/10,000 once extracted, so always "
         "finite: NaN, infinity or an amount beyond NUMERIC(19,4) is stored empty and quarantined by "
         "`fields_parse`.)",
         _reconciliation_amounts),
    Rule(RECONCILIATIONS, "line_references", RuleKind.REFERENCE,
         "Quarantines reconciliations neither of whose lines is among the extracted receivable lines (the "
         "credit side is often a payment line, which is not extracted: only one side needs to be ours); "
         "blocking when more than `max_broken_reference_share` of them are broken.",
         _reconciliation_lines, references=(LINES,)),
    _dates_plausible(RECONCILIATIONS, ("max_date",), shows=_BOTH_LINES),
    _fields_parse(RECONCILIATIONS, _BOTH_LINES, "Odoo", _ODOO_PARSE),
)

# -- zendesk_tickets ---------------------------------------------------------------------------
TICKET_COLUMNS = ("id", "status", "subject", "requester_id", "from_address", "created_at", "updated_at")
TICKET_DATES = ("created_at", "updated_at")

TICKET_RULES = (
    _required_columns(TICKETS, TICKET_COLUMNS),
    _unique_ids(TICKETS),
    _known_values(TICKETS, "known_statuses", "status", TICKET_STATUSES, "the ticket status"),
    _dates_parse(TICKETS, TICKET_DATES),
    Rule(TICKETS, "requester_references", RuleKind.REFERENCE,
         "Quarantines tickets whose requester is not among the extracted Zendesk users; blocking when "
         "more than `max_broken_reference_share` of them are broken.",
         lambda p: [_found_in("requester_id", USERS, "the ticket requester is among the Zendesk users")],
         references=(USERS,)),
    Rule(TICKETS, "emails_well_formed", RuleKind.RECORD,
         "Quarantines tickets whose sender address, where present, is not a well-formed email address.",
         lambda p: [_email("from_address", ("subject",))]),
    _dates_plausible(TICKETS, TICKET_DATES, shows=("subject",)),
    _fields_parse(TICKETS, ("subject",), "Zendesk", _ZENDESK_PARSE),
    _freshness(TICKETS, "updated_at"),
)

# -- zendesk_users -----------------------------------------------------------------------------
USER_COLUMNS = ("id", "email", "name", "organization_id", "role", "updated_at")

USER_RULES = (
    _required_columns(USERS, USER_COLUMNS),
    _unique_ids(USERS),
    _known_values(USERS, "known_roles", "role", USER_ROLES, "the user role"),
    _dates_parse(USERS, ("updated_at",)),
    Rule(USERS, "emails_well_formed", RuleKind.RECORD,
         "Quarantines users whose email, where present, is not a well-formed address.",
         lambda p: [_email("email", ("name",))]),
    _dates_plausible(USERS, ("updated_at",), shows=("name",)),
    _fields_parse(USERS, ("name",), "Zendesk", _ZENDESK_PARSE),
)

# -- zendesk_comments --------------------------------------------------------------------------
COMMENT_COLUMNS = ("id", "ticket_id", "author_id", "public", "body", "created_at")

COMMENT_RULES = (
    _required_columns(COMMENTS, COMMENT_COLUMNS),
    _unique_ids(COMMENTS),
    _dates_parse(COMMENTS, ("created_at",)),
    Rule(COMMENTS, "ticket_references", RuleKind.REFERENCE,
         "Quarantines comments whose ticket is not among the extracted tickets; blocking when more than "
         "`max_broken_reference_share` of them are broken.",
         lambda p: [_found_in("ticket_id", TICKETS, "the comment's ticket is among the Zendesk tickets")],
         references=(TICKETS,)),
    _dates_plausible(COMMENTS, ("created_at",), shows=("ticket_id",)),
    _fields_parse(COMMENTS, ("ticket_id",), "Zendesk", _ZENDESK_PARSE),
)

SUITES: dict[str, tuple[Rule, ...]] = {
    INVOICES: INVOICE_RULES,
    CUSTOMERS: CUSTOMER_RULES,
    LINES: LINE_RULES,
    RECONCILIATIONS: RECONCILIATION_RULES,
    TICKETS: TICKET_RULES,
    USERS: USER_RULES,
    COMMENTS: COMMENT_RULES,
}
