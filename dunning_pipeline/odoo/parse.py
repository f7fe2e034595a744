"""Odoo records (as `search_read` returns them) to typed frames with the warehouse's columns.

Pure: no I/O, no Dagster. The columns are exactly those of the `odoo_*` tables in
`dunning_pipeline/warehouse/schema.py`, in that order:

- many2one `[id, "display name"]` -> an id column (nullable Int64) and, where the table has
  one, a name column; a currency many2one -> its ISO code (the display name of `res.currency`);
- Odoo's `false` for an empty field -> null (booleans excepted: there `false` is a value);
- dates -> datetime64[s]; datetimes (UTC, no zone marker) -> naive UTC datetime64[us];
- money (JSON parsed with `Decimal`) -> int64 units of 1/10,000 (`dunning_pipeline.money`).

A value that does not fit (a date that does not parse, an amount that is not a number or beyond
what NUMERIC(19,4) and int64 units hold, a many2one that is not `[id, name]`, text of another
type) never fails the page: the field is stored null and the record's `parse_error` names the
record, the field and the problem, for the data-quality rule `fields_parse` to quarantine. Text
with a lone surrogate or NUL is stored with U+FFFD instead (`safe_text`) and noted the same way.
What cannot be stored at all (a record without an integer id, a field missing from Odoo's
answer, a move without move_type or state, a receivable line without its move) raises
`OdooDataError` naming the model, the record and the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from dunning_pipeline import lazy, money, safe_text
from dunning_pipeline.odoo.errors import OdooDataError
from dunning_pipeline.warehouse import schema

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

INVOICE_MODEL = "account.move"
PARTNER_MODEL = "res.partner"
CATEGORY_MODEL = "res.partner.category"

# Customer invoices and credit notes, in every state, so a cancellation or a reset to draft of
# an invoice we already hold is seen; which of them are receivables is the dunning engine's call.
INVOICE_MOVE_TYPES = ("out_invoice", "out_refund")
INVOICE_DOMAIN: list = [["move_type", "in", list(INVOICE_MOVE_TYPES)]]
PARTNER_DOMAIN: list = []
# Archived partners too: an invoice may belong to a customer archived since.
ALL_RECORDS_CONTEXT = {"active_test": False}

# (column, Odoo field, kind). Every field here exists on account.move / res.partner in Odoo 16,
# 17, 18 and 19 with the Invoicing app (module `account`); asking for one that does not makes
# Odoo fail the whole call, so adding a field means checking all four versions.
INVOICE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("id", "id", "id"),
    ("name", "name", "text"),
    ("move_type", "move_type", "required_text"),
    ("state", "state", "required_text"),
    ("payment_state", "payment_state", "text"),
    ("partner_id", "partner_id", "m2o_id"),
    ("partner_name", "partner_id", "m2o_name"),
    ("commercial_partner_id", "commercial_partner_id", "m2o_id"),
    ("company_id", "company_id", "m2o_id"),
    ("company_name", "company_id", "m2o_name"),
    ("currency", "currency_id", "m2o_currency"),
    ("company_currency", "company_currency_id", "m2o_currency"),
    ("invoice_date", "invoice_date", "date"),
    ("invoice_date_due", "invoice_date_due", "date"),
    ("amount_total", "amount_total", "money"),
    ("amount_residual", "amount_residual", "money"),
    ("amount_total_signed", "amount_total_signed", "money"),
    ("amount_residual_signed", "amount_residual_signed", "money"),
    ("invoice_origin", "invoice_origin", "text"),
    ("ref", "ref", "text"),
    ("payment_term", "invoice_payment_term_id", "m2o_name"),
    ("write_date", "write_date", "datetime"),
    ("create_date", "create_date", "datetime"),
)

# The receivable lines of customer moves: one per instalment of the payment term. Odoo's Aged
# Receivable report ages these, not the moves (`invoice_date_due` is only the last instalment).
LINE_MODEL = "account.move.line"
LINE_DOMAIN: list = [["display_type", "=", "payment_term"],
                     ["account_id.account_type", "=", "asset_receivable"],
                     ["parent_state", "=", "posted"]]
LINE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("id", "id", "id"),
    ("move_id", "move_id", "m2o_id"),
    ("company_id", "company_id", "m2o_id"),
    ("partner_id", "partner_id", "m2o_id"),
    ("date_maturity", "date_maturity", "date"),
    ("amount_residual", "amount_residual", "money"),
    ("amount_residual_currency", "amount_residual_currency", "money"),
    ("balance", "balance", "money"),
    ("amount_currency", "amount_currency", "money"),
    ("reconciled", "reconciled", "bool"),
    ("write_date", "write_date", "datetime"),
)

CUSTOMER_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("id", "id", "id"),
    ("name", "name", "text"),
    ("email", "email", "text"),
    ("phone", "phone", "text"),
    ("vat", "vat", "text"),
    ("lang", "lang", "text"),
    ("country", "country_id", "m2o_name"),
    ("is_company", "is_company", "bool"),
    ("parent_id", "parent_id", "m2o_id"),
    ("commercial_partner_id", "commercial_partner_id", "m2o_id"),
    ("customer_rank", "customer_rank", "int"),
    ("tags", "category_id", "tag_names"),
    ("company_id", "company_id", "m2o_id"),
    ("active", "active", "bool"),
    ("write_date", "write_date", "datetime"),
)


def _fields(columns: Sequence[tuple[str, str, str]]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for _col, field, _kind in columns:
        if field != "id":
            seen.setdefault(field, None)
    return tuple(seen)


INVOICE_FIELDS = _fields(INVOICE_COLUMNS)
PARTNER_FIELDS = _fields(CUSTOMER_COLUMNS)
LINE_FIELDS = _fields(LINE_COLUMNS)
CATEGORY_FIELDS = ("name",)


def _check_against_table(columns, table) -> None:
    expected = [c.name for c in table.columns]
    got = [c for c, _f, _k in columns] + ["extracted_at"] + (["parse_error"] if "parse_error" in table.c else [])
    if got != expected:  # a schema change must be reflected here, or loading would fail later
        raise AssertionError(f"parse columns {got} differ from table {table.name} columns {expected}")


_check_against_table(INVOICE_COLUMNS, schema.odoo_invoices)
_check_against_table(CUSTOMER_COLUMNS, schema.odoo_customers)
_check_against_table(LINE_COLUMNS, schema.odoo_receivable_lines)

MONEY_COLUMNS = tuple(c for c, _f, k in INVOICE_COLUMNS if k == "money")


# -- public API --------------------------------------------------------------------------------
def parse_invoices(records: Sequence[Mapping], *, extracted_at: datetime) -> pd.DataFrame:
    """account.move records -> a frame with the columns of `odoo_invoices`."""
    return _parse(records, INVOICE_MODEL, INVOICE_COLUMNS, extracted_at=extracted_at)


def parse_customers(
    records: Sequence[Mapping], *, tag_names: Mapping[int, str], extracted_at: datetime
) -> pd.DataFrame:
    """res.partner records -> a frame with the columns of `odoo_customers`.

    `tag_names` maps res.partner.category ids to names (see `parse_tag_names`); a tag id that
    is not in it (a category the user may not read) is kept as "#<id>" rather than dropped.
    """
    return _parse(records, PARTNER_MODEL, CUSTOMER_COLUMNS, extracted_at=extracted_at, tag_names=tag_names)


def parse_receivable_lines(records: Sequence[Mapping], *, extracted_at: datetime) -> pd.DataFrame:
    """account.move.line records -> a frame with the columns of `odoo_receivable_lines`."""
    frame = _parse(records, LINE_MODEL, LINE_COLUMNS, extracted_at=extracted_at)
    orphan = frame["move_id"].isna()
    if orphan.any():
        line = frame.loc[orphan, "id"].iloc[0]
        raise OdooDataError(f"{LINE_MODEL} {line}: field move_id: a receivable line without its move")
    frame["move_id"] = frame["move_id"].astype("int64")
    return frame


def empty_receivable_lines() -> pd.DataFrame:
    return parse_receivable_lines([], extracted_at=datetime(1970, 1, 1))


def parse_tag_names(records: Sequence[Mapping]) -> dict[int, str]:
    """res.partner.category records -> {id: name}."""
    out: dict[int, str] = {}
    for rec in records:
        cid = rec.get("id")
        name = rec.get("name")
        if not isinstance(cid, int) or isinstance(cid, bool):
            raise OdooDataError(f"{CATEGORY_MODEL} record without an integer id: {_short(rec)}")
        if not isinstance(name, str):
            raise OdooDataError(f"{CATEGORY_MODEL} {cid}: field name: expected text, got {_short(name)}")
        out[cid] = name
    return out


def empty_invoices() -> pd.DataFrame:
    return parse_invoices([], extracted_at=datetime(1970, 1, 1))


def empty_customers() -> pd.DataFrame:
    return parse_customers([], tag_names={}, extracted_at=datetime(1970, 1, 1))


def currency_code(display_name: str) -> str | None:
    """The ISO 4217 code in a res.currency display name ("EUR"), or None if there is none."""
    m = _ISO_CODE.match(display_name.strip()) if isinstance(display_name, str) else None
    return m.group(1) if m else None


_ISO_CODE = re.compile(r"^([A-Z]{3})(?![A-Za-z])")


# -- implementation ----------------------------------------------------------------------------
def _parse(records, model, columns, *, extracted_at: datetime, tag_names=None) -> pd.DataFrame:
    records = list(records)
    _check_ids(records, model)
    out: dict[str, object] = {}
    raw_cache: dict[str, list] = {}
    issues: dict[int, dict[str, str]] = {}  # record index -> {field: message}
    for col, field, kind in columns:
        if field not in raw_cache:
            raw_cache[field] = _column(records, model, field)
        where = _Where(model, records, field, issues)
        if kind == "tag_names":
            out[col] = _conv_tag_names(raw_cache[field], where, tag_names or {})
        else:
            out[col] = _CONVERTERS[kind](raw_cache[field], where)
    stamp = pd.Timestamp(extracted_at)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    out["extracted_at"] = pd.Series([stamp] * len(records), dtype="datetime64[us]")
    errors = [None] * len(records)
    for i, by_field in issues.items():
        errors[i] = "; ".join(by_field.values())
    out["parse_error"] = pd.Series(errors, dtype=object)
    return pd.DataFrame(out)


class _Where:
    """Names a record and field in error messages, found lazily (only when there is an error)."""

    def __init__(self, model: str, records: list, field: str, issues: dict | None = None):
        self.model, self.records, self.field = model, records, field
        self.issues = {} if issues is None else issues

    def message(self, index: int, problem: str) -> str:
        rec = self.records[index]
        label = f"{self.model} {rec.get('id')}"
        name = rec.get("name")
        if isinstance(name, str) and name and self.field != "name":
            label += f" ({safe_text.clean(name)})"
        return f"{label}: field {self.field}: {problem}"

    def error(self, index: int, problem: str) -> OdooDataError:
        """A value that makes the record unstorable: fails the page."""
        return OdooDataError(self.message(index, problem))

    def note(self, index: int, problem: str) -> None:
        """A value that does not fit: the caller stores null, the record's parse_error says why
        (once per field: an id and a name column read the same many2one)."""
        self.issues.setdefault(index, {}).setdefault(self.field, self.message(index, problem))

    def text(self, vals: list) -> list:
        """Text values with lone surrogates / NUL replaced, each such record noted."""
        for i in safe_text.suspect_positions(vals):
            self.note(i, f"{_short(vals[i])} {safe_text.text_problem(vals[i])}")
        return safe_text.clean_strings(vals)


def _check_ids(records: list, model: str) -> None:
    for i, rec in enumerate(records):
        rid = rec.get("id") if isinstance(rec, Mapping) else None
        if not isinstance(rid, int) or isinstance(rid, bool):
            raise OdooDataError(f"{model}: record #{i + 1} of the page has no integer id: {_short(rec)}")


def _column(records: list, model: str, field: str) -> list:
    try:
        return [r[field] for r in records]
    except KeyError:
        for r in records:
            if field not in r:
                raise OdooDataError(
                    f"{model} {r.get('id')}: field {field} is missing from Odoo's answer"
                ) from None
        raise


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_bad(values: list, ok: Callable[[object], bool]) -> int | None:
    for i, v in enumerate(values):
        if not ok(v):
            return i
    return None


# Each converter checks a whole column at C speed first (types of all values at once) and only
# walks it value by value, to note each bad record (`_Where.note`), when that check fails.
_NONE = type(None)
# What an amount may be: int64 units (NUMERIC(19,4) holds more, int64 is the tighter bound).
_UNITS_MIN, _UNITS_MAX = -(2**63), 2**63 - 1  # the int64 range
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1  # the int32 range: an INTEGER column


def _types(values) -> set:
    return set(map(type, values))


def _conv_id(raw: list, where: _Where) -> pd.Series:
    return pd.Series(np.asarray(raw, dtype=np.int64), dtype="int64")


def _null_bad(vals: list, where: _Where, ok: Callable[[object], bool], problem: Callable[[object], str]) -> list:
    """`vals` with each value that is not `ok` noted (with `problem(value)`) and set to None."""
    out = list(vals)
    for i, v in enumerate(vals):
        if not ok(v):
            where.note(i, problem(v))
            out[i] = None
    return out


def _conv_text(raw: list, where: _Where) -> pd.Series:
    vals = [None if v is False else v for v in raw]
    if not _types(vals) <= {str, _NONE}:
        vals = _null_bad(vals, where, lambda v: v is None or isinstance(v, str),
                         lambda v: f"expected text or false, got {_short(v)}")
    return pd.Series(where.text(vals), dtype=object)


def _conv_required_text(raw: list, where: _Where) -> pd.Series:
    if _types(raw) != {str} or "" in raw:
        bad = _first_bad(raw, lambda v: isinstance(v, str) and v != "")
        if bad is not None:
            raise where.error(bad, f"is required, got {_short(raw[bad])}")
    return pd.Series(where.text(raw), dtype=object)


def _is_m2o(v) -> bool:
    return v is False or v is None or (
        isinstance(v, (list, tuple)) and len(v) == 2 and isinstance(v[0], int)
        and not isinstance(v[0], bool) and _UNITS_MIN <= v[0] <= _UNITS_MAX
        and (isinstance(v[1], str) or v[1] is False)
    )


def _m2o_parts(raw: list, where: _Where) -> tuple[list, list]:
    """([id or None], [name or None]) of a many2one column, checked."""
    pairs = [v for v in raw if v]
    ok = _types(pairs) <= {list, tuple} and set(map(len, pairs)) <= {2}
    if ok:
        ids = [v[0] if v else None for v in raw]
        names = [(v[1] or None) if v else None for v in raw]
        ok = _types(ids) <= {int, _NONE} and _types(names) <= {str, _NONE} and _types(raw) - {
            list, tuple} <= {bool, _NONE} and True not in raw
        present = [i for i in ids if i is not None]
        ok = ok and (not present or _UNITS_MIN <= min(present) and max(present) <= _UNITS_MAX)  # BIGINT
    if not ok:
        raw = _null_bad(raw, where, _is_m2o, lambda v: f"expected [id, name] or false, got {_short(v)}")
        ids = [v[0] if v else None for v in raw]
        names = [(v[1] or None) if v else None for v in raw]
    return ids, where.text(names)


def _conv_m2o_id(raw: list, where: _Where) -> pd.Series:
    return pd.Series(_m2o_parts(raw, where)[0], dtype="Int64")


def _conv_m2o_name(raw: list, where: _Where) -> pd.Series:
    return pd.Series(_m2o_parts(raw, where)[1], dtype=object)


def _conv_m2o_currency(raw: list, where: _Where) -> pd.Series:
    _ids, names = _m2o_parts(raw, where)
    known: dict[str, str | None] = {}  # a handful of currencies: parse each name once
    codes = []
    for i, name in enumerate(names):
        if name is None:
            codes.append(None)
            continue
        code = known[name] if name in known else known.setdefault(name, currency_code(name))
        if code is None:
            where.note(i, f"currency display name {name!r} does not start with an ISO 4217 code")
        codes.append(code)
    return pd.Series(codes, dtype=object)


def _conv_money(raw: list, where: _Where) -> pd.Series:
    units: list = []
    for i, v in enumerate(raw):
        if v is False or v is None:
            units.append(None)
            continue
        if isinstance(v, bool) or not isinstance(v, (int, Decimal, float, str)):
            where.note(i, f"expected an amount, got {_short(v)}")
            units.append(None)
            continue
        try:
            unit = money.to_units(v)
        except money.MoneyError as exc:
            where.note(i, str(exc))
            unit = None
        if unit is not None and not _UNITS_MIN <= unit <= _UNITS_MAX:
            where.note(i, f"amount {_short(v)} is beyond what the warehouse holds "
                          f"(NUMERIC(19,4) as int64 units of 1/{money.SCALE:,})")
            unit = None
        units.append(unit)
    if None in units:
        return pd.Series(units, dtype="Int64")
    return pd.Series(np.asarray(units, dtype=np.int64), dtype="int64")


def _conv_int(raw: list, where: _Where) -> pd.Series:
    vals = [None if v is False else v for v in raw]
    if not _types(vals) <= {int, _NONE} or any(v is not None and not _INT_MIN <= v <= _INT_MAX for v in vals):
        vals = _null_bad(vals, where, lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)
                                                              and _INT_MIN <= v <= _INT_MAX),
                         lambda v: f"expected an integer (32-bit), got {_short(v)}")
    return pd.Series(vals, dtype="Int64")


def _conv_bool(raw: list, where: _Where) -> pd.Series:
    # A boolean field's `false` is the value False, not "empty".
    if not _types(raw) <= {bool, _NONE}:
        raw = _null_bad(raw, where, lambda v: isinstance(v, bool) or v is None,
                        lambda v: f"expected true or false, got {_short(v)}")
    return pd.Series(raw, dtype="boolean")


def _parse_times(raw: list, where: _Where, length: int, kind: str, unit: str) -> pd.Series:
    """Odoo's fixed-width "YYYY-MM-DD" / "YYYY-MM-DD HH:MM:SS" strings, parsed by numpy in C."""
    vals = [None if v is False else v for v in raw]
    strings = [v for v in vals if v is not None]
    try:
        if not _types(strings) <= {str} or set(map(len, strings)) - {length}:
            raise ValueError("not all fixed-width strings")
        parsed = np.array(vals, dtype=f"datetime64[{unit}]")
    except ValueError:
        shape = "YYYY-MM-DD" if kind == "date" else "YYYY-MM-DD HH:MM:SS"
        good = list(vals)
        for i, v in enumerate(vals):
            if v is None:
                continue
            if not isinstance(v, str):
                where.note(i, f"expected a {kind} string or false, got {_short(raw[i])}")
                good[i] = None
                continue
            try:
                if len(v) != length:
                    raise ValueError
                np.datetime64(v, unit)
            except ValueError:
                where.note(i, f"{_short(safe_text.clean(v))} is not a {kind} ({shape})")
                good[i] = None
        parsed = np.array(good, dtype=f"datetime64[{unit}]")
    return pd.Series(parsed, dtype=f"datetime64[{unit}]")


def _conv_date(raw: list, where: _Where) -> pd.Series:
    return _parse_times(raw, where, 10, "date", "s")


def _conv_datetime(raw: list, where: _Where) -> pd.Series:
    # Odoo sends UTC without a zone marker; the warehouse keeps naive UTC.
    return _parse_times(raw, where, 19, "datetime", "us")


def _conv_tag_names(raw: list, where: _Where, tag_names: Mapping[int, str]) -> pd.Series:
    out = []
    for i, v in enumerate(raw):
        if v is False or v is None:
            v = []
        if not isinstance(v, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in v):
            where.note(i, f"expected a list of tag ids, got {_short(v)}")
            out.append(None)
            continue
        names = [tag_names.get(t, f"#{t}") for t in v]
        for k in safe_text.suspect_positions(names):
            where.note(i, f"tag {_short(names[k])} {safe_text.text_problem(names[k])}")
        out.append(json.dumps(safe_text.clean_strings(names), ensure_ascii=False))
    return pd.Series(out, dtype=object)


_CONVERTERS: dict[str, Callable] = {
    "id": _conv_id,
    "text": _conv_text,
    "required_text": _conv_required_text,
    "m2o_id": _conv_m2o_id,
    "m2o_name": _conv_m2o_name,
    "m2o_currency": _conv_m2o_currency,
    "money": _conv_money,
    "int": _conv_int,
    "bool": _conv_bool,
    "date": _conv_date,
    "datetime": _conv_datetime,
}


# -- reconciliations (account.partial.reconcile) -----------------------------------------------
# What each payment or credit note settled of a receivable line, and when (`max_date`, the later
# of the two lines' dates): Odoo's Aged Receivable at a past date subtracts exactly these.
# Every field here exists on account.partial.reconcile in Odoo 16 to 19.
RECONCILIATION_MODEL = "account.partial.reconcile"
# Both lines of a reconciliation are on one account: the receivable's.
RECONCILIATION_DOMAIN: list = [["debit_move_id.account_id.account_type", "=", "asset_receivable"]]
RECONCILIATION_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("id", "id", "id"),
    ("debit_line_id", "debit_move_id", "m2o_id"),
    ("credit_line_id", "credit_move_id", "m2o_id"),
    ("company_id", "company_id", "m2o_id"),
    ("company_currency", "company_currency_id", "m2o_currency"),
    ("amount", "amount", "money"),
    ("debit_currency", "debit_currency_id", "m2o_currency"),
    ("debit_amount_currency", "debit_amount_currency", "money"),
    ("credit_currency", "credit_currency_id", "m2o_currency"),
    ("credit_amount_currency", "credit_amount_currency", "money"),
    ("max_date", "max_date", "date"),
    ("create_date", "create_date", "datetime"),
    ("write_date", "write_date", "datetime"),
)
RECONCILIATION_FIELDS = _fields(RECONCILIATION_COLUMNS)
_check_against_table(RECONCILIATION_COLUMNS, schema.odoo_reconciliations)


def parse_reconciliations(records: Sequence[Mapping], *, extracted_at: datetime) -> pd.DataFrame:
    """account.partial.reconcile records -> a frame with the columns of `odoo_reconciliations`.
    A value that does not fit is stored null and named in `parse_error`, as for the moves; a
    reconciliation without a line, an amount or `max_date` is stored as it is: the checks
    quarantine it (it cannot be placed or dated), and the KPIs leave it out."""
    return _parse(records, RECONCILIATION_MODEL, RECONCILIATION_COLUMNS, extracted_at=extracted_at)


def empty_reconciliations() -> pd.DataFrame:
    return parse_reconciliations([], extracted_at=datetime(1970, 1, 1))
