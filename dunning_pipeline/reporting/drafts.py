"""Reminder drafts from templates: one per customer and company whose stage calls for an email.

A customer (commercial partner) gets a draft when the highest stage in effect among its dunned
invoices (in dunning, not on hold) of one company has the action `email` or `letter`. The draft
is written in the customer's language (Odoo partner `lang`; English, German and French ship,
English when unknown), its tone set by that stage, from the Jinja2 template
`reminder_<language>.txt.j2` (the policy's `drafts.templates_dir` overrides it by file name; the
first line is `Subject: ...`). It lists the customer's overdue invoices (or their overdue
instalments, when the instalment table is given) with amounts and due dates in the customer's
locale (Babel), the open credit, late-payment interest and fees when the policy charges them;
disputed invoices are left out of the demand and named as under review. It refers to the last
conversation only when the timeline holds one. Nothing is sent from here. Pure: no Dagster,
no I/O beyond reading the templates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import babel
from babel.dates import format_date
from babel.numbers import format_currency

from dunning_pipeline import lazy, money
from dunning_pipeline.reporting.timeline import INBOUND, MESSAGE, template_environment

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
pd = lazy.module("pandas")

LANGUAGES = ("en", "de", "fr")
FALLBACK_LANGUAGE = "en"
DRAFT_ACTIONS = ("email", "letter")
UNDER_REVIEW_HOLDS = ("dispute", "payment_claimed")
PHONE_CHANNELS = ("voice",)

COLUMNS = [
    "customer_id", "company_id", "customer_name", "customer_email", "company_name", "lang", "locale", "stage",
    "action", "tone", "manual_only", "subject", "body", "template_name", "invoice_numbers", "amounts",
    "under_review", "demand_totals", "open_credit", "interest_total", "fee_total", "last_contact_kind",
    "last_contact_on", "last_contact_ticket_id", "as_of_date",
]


class DraftTemplateError(ValueError):
    """A template that renders no `Subject:` line; names the template."""


@dataclass(frozen=True)
class Locale:
    language: str  # of the template: en, de, fr
    locale: str  # for Babel: the partner's own (de_CH) when Babel knows it

    def money(self, units: int, currency: str) -> str:
        places = money.currency_decimals(currency)
        dec = money.to_decimal(units).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        return format_currency(dec, currency, locale=self.locale)

    def day(self, value) -> str:
        return format_date(pd.Timestamp(value).date(), format="long", locale=self.locale)


def customer_locale(lang: str | None) -> Locale:
    """The template language and Babel locale of an Odoo `lang` such as de_DE, fr_CH or nl_NL."""
    code = (lang or "").strip()
    language = code.split("_")[0].split("-")[0].lower()
    if language not in LANGUAGES:
        return Locale(FALLBACK_LANGUAGE, FALLBACK_LANGUAGE)
    try:
        return Locale(language, str(babel.Locale.parse(code.replace("-", "_"))))
    except (ValueError, babel.UnknownLocaleError):
        return Locale(language, language)


def last_conversations(timeline: pd.DataFrame) -> dict[int, dict]:
    """Per customer of `timeline`, the latest public message: our email, their message, or a
    phone call (Zendesk voice channel); a customer without one is not in the answer (its draft
    then refers to nothing). One stable sort of all the public messages keeps, per customer, the
    latest message a sort of its own would."""
    msgs = timeline[(timeline["kind"] == MESSAGE) & (timeline["visibility"] == "public")]
    last = msgs.sort_values(["day", "at", "comment_id"], kind="stable").groupby("customer_id", sort=False).tail(1)
    out = {}
    for customer_id, day, channel, event, ticket_id in zip(
            last["customer_id"].tolist(), last["day"].tolist(), last["channel"].tolist(), last["event"].tolist(),
            last["ticket_id"].tolist(), strict=True):
        channel = channel if isinstance(channel, str) else ""
        kind = ("phone" if channel in PHONE_CHANNELS else "email_in" if event == INBOUND else "email_out")
        out[int(customer_id)] = {"kind": kind, "day": pd.Timestamp(day), "ticket_id": int(ticket_id)}
    return out


def _records(frame: pd.DataFrame, columns: list[str]) -> list[dict]:
    """The rows as dicts of the given columns (column by column: far cheaper than row access)."""
    return [dict(zip(columns, values, strict=True)) for values in zip(*(frame[c].tolist() for c in columns), strict=True)]


INSTALMENT_COLUMNS = ["invoice_id", "amount_residual", "date_maturity", "days_overdue", "instalment_number",
                       "instalments_total"]


def _overdue_instalments(instalments: pd.DataFrame | None, invoice_ids=None) -> dict[int, list[dict]]:
    """Each invoice's overdue instalments, oldest first (only those of `invoice_ids` when given)."""
    if instalments is None or not len(instalments):
        return {}
    due = instalments[instalments["days_overdue"] > 0]
    if invoice_ids is not None:
        due = due[due["invoice_id"].isin(invoice_ids)]
    parts: dict[int, list[dict]] = {}
    for p in _records(due.sort_values(["invoice_id", "date_maturity"], kind="stable"), INSTALMENT_COLUMNS):
        parts.setdefault(int(p["invoice_id"]), []).append(p)
    return parts


def _by_due_date(rows: list[dict]) -> list[dict]:
    """Oldest due date first, then by number (missing ones last, as pandas sorts)."""
    return sorted(rows, key=lambda r: (pd.isna(r["invoice_date_due"]),
                                       r["invoice_date_due"] if pd.notna(r["invoice_date_due"]) else 0,
                                       *_number_key(r)))


def _by_number(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=_number_key)


def _number_key(row: dict) -> tuple[bool, str]:
    number = row["invoice_number"]
    return (not isinstance(number, str), number if isinstance(number, str) else "")


def _lines(rows: list[dict], parts: dict[int, list[dict]], loc: Locale) -> list[dict]:
    """Demand lines: one per invoice, or per overdue instalment when instalments are known."""
    out = []
    for r in _by_due_date(rows):
        own = parts.get(int(r["invoice_id"]))
        if own is not None and int(own[0]["instalments_total"]) > 1:
            for p in own:
                out.append({"invoice_number": r["invoice_number"], "currency": r["currency"],
                            "units": int(p["amount_residual"]),
                            "amount": loc.money(int(p["amount_residual"]), r["currency"]),
                            "due_date": loc.day(p["date_maturity"]), "days_overdue": int(p["days_overdue"]),
                            "instalment": int(p["instalment_number"]), "instalments": int(p["instalments_total"])})
        else:
            due_date = r["invoice_date_due"] if pd.notna(r["invoice_date_due"]) else r["invoice_date"]
            out.append({"invoice_number": r["invoice_number"], "currency": r["currency"],
                        "units": int(r["amount_residual"]), "amount": loc.money(int(r["amount_residual"]), r["currency"]),
                        "due_date": loc.day(due_date), "days_overdue": int(r["days_overdue"]),
                        "instalment": None, "instalments": None})
    return out


def _totals(items: list[tuple[str, int]], loc: Locale) -> list[dict]:
    sums: dict[str, int] = {}
    for currency, units in items:
        sums[currency] = sums.get(currency, 0) + int(units)
    return [{"currency": c, "units": u, "amount": loc.money(u, c)} for c, u in sorted(sums.items()) if u]


def draft_customer_ids(aging: pd.DataFrame) -> list[int]:
    """The customers that get a draft today (whose timeline the drafts read)."""
    return sorted({int(c) for c in _draft_customers(aging)["customer_id"]})


# What the drafts read of the timeline: its public messages (the last contact, the conversation).
TIMELINE_COLUMNS = ["customer_id", "day", "at", "kind", "event", "direction", "visibility", "channel", "ticket_id",
                    "subject", "text", "comment_id"]


# What _draft_customers reads of invoice_aging (its dunned rows are enough).
STAGE_COLUMNS = ("customer_id", "company_id", "dunning_status", "stage", "stage_rank", "action")


def _draft_customers(aging: pd.DataFrame) -> pd.DataFrame:
    """(customer, company) pairs whose highest dunned stage is an email or letter stage."""
    dunned = aging[(aging["dunning_status"] == "dunned") & aging["stage"].notna()]
    top = dunned.sort_values("stage_rank", kind="stable").groupby(["customer_id", "company_id"], dropna=False).tail(1)
    return top[top["action"].isin(DRAFT_ACTIONS)].sort_values(["customer_id", "company_id"])


# What a draft reads of invoice_aging: the stage of the customer and its invoices' lines.
AGING_COLUMNS = ["customer_id", "company_id", "customer_name", "invoice_id", "invoice_number", "move_type", "currency",
                  "amount_residual", "invoice_date", "invoice_date_due", "days_overdue", "dunning_status",
                  "hold_reason", "stage", "stage_rank", "action", "tone", "manual_only"]


def _charges_of(charges: pd.DataFrame | None) -> dict:
    """invoice_id -> its late-payment charges (interest_statutory True or False; missing is False)."""
    if charges is None or not len(charges):
        return {}
    statutory = (charges["interest_statutory"] if "interest_statutory" in charges
                 else pd.Series(False, index=charges.index)).astype("boolean").fillna(False)
    frame = charges.assign(interest_statutory=statutory.astype(bool))
    return {r["invoice_id"]: r for r in _records(frame, ["invoice_id", "currency", "interest_amount", "fee_amount",
                                                         "interest_statutory"])}


def build_drafts(aging: pd.DataFrame, customers: pd.DataFrame, timeline: pd.DataFrame, as_of: date, *,
                 charges: pd.DataFrame | None = None, instalments: pd.DataFrame | None = None,
                 templates_dir=None) -> pd.DataFrame:
    """The template drafts of the day (see the module doc).

    `aging`: invoice_aging rows; `customers`: customer_id, customer_name, customer_email,
    customer_lang, company_id, company_name (one row per customer and company, e.g. from
    receivables); `charges`: interest.late_payment_charges; `instalments`: instalment_aging."""
    env = template_environment(templates_dir, autoescape=False)
    attrs = customers.drop_duplicates(["customer_id", "company_id"]).set_index(["customer_id", "company_id"])
    charged = _charges_of(charges)
    aging = aging[[c for c in AGING_COLUMNS if c in aging]]
    aging = aging.assign(company_key=aging["company_id"].astype("Int64").fillna(-1))  # NaN keys never match
    tops = _draft_customers(aging)
    # Only the rows of the customers that get a draft, as plain records grouped once: a loop that
    # filtered the whole table per customer would be quadratic, and pandas per draft is most of the work.
    keys = pd.MultiIndex.from_frame(aging[["customer_id", "company_key"]])
    drafted = aging[keys.isin(pd.MultiIndex.from_frame(tops[["customer_id", "company_key"]]))]
    by_customer: dict[tuple[int, int], list[dict]] = {}
    for r in _records(drafted, list(drafted.columns)):
        by_customer.setdefault((int(r["customer_id"]), int(r["company_key"])), []).append(r)
    contacts = last_conversations(timeline[timeline["customer_id"].isin(tops["customer_id"])])
    parts = _overdue_instalments(instalments, drafted["invoice_id"])
    rows = []
    for top in tops.itertuples(index=False):
        key = (top.customer_id, top.company_id)
        mine = by_customer[(int(top.customer_id), int(top.company_key))]
        a = attrs.loc[key] if key in attrs.index else None
        loc = customer_locale(a["customer_lang"] if a is not None else None)
        invoices = [r for r in mine if r["move_type"] == "out_invoice"]
        demand = [r for r in invoices if r["dunning_status"] == "dunned" and r["amount_residual"] > 0]
        overdue = [r for r in demand if r["days_overdue"] > 0]
        shown = overdue if overdue else demand  # a pre-due note lists what falls due soon
        lines = _lines(shown, parts, loc)
        review = _by_number([r for r in invoices if r["hold_reason"] in UNDER_REVIEW_HOLDS])
        credit_rows = [(r["invoice_number"], r["currency"], r["amount_residual"])
                       for r in _by_number([r for r in mine if r["move_type"] == "out_refund" and r["amount_residual"] < 0])]
        credit_lines = [{"invoice_number": number, "units": -int(units), "amount": loc.money(-int(units), currency)}
                        for number, currency, units in credit_rows]
        mine_charges = [charged[r["invoice_id"]] for r in shown if r["invoice_id"] in charged]
        interest = _totals([(c["currency"], c["interest_amount"]) for c in mine_charges], loc)
        fees = _totals([(c["currency"], c["fee_amount"]) for c in mine_charges], loc)
        statutory = any(c["interest_statutory"] is True for c in mine_charges)
        totals = _totals([(ln["currency"], ln["units"]) for ln in lines], loc)
        credit_totals = _totals([(currency, -int(units)) for _number, currency, units in credit_rows], loc)
        contact = contacts.get(int(top.customer_id))
        promised = any(r["hold_reason"] == "promise" for r in mine)
        context = {
            "customer_name": (a["customer_name"] if a is not None else None) or top.customer_name,
            "company_name": (a["company_name"] if a is not None else None) or "",
            "stage": top.stage, "tone": top.tone, "action": top.action, "overdue": bool(overdue),
            "lines": lines, "totals": totals, "credits": credit_lines, "credit_totals": credit_totals,
            "under_review": [r["invoice_number"] for r in review], "interest": interest, "fees": fees,
            "statutory_interest": statutory, "as_of": loc.day(as_of),
            "last_contact": None if contact is None else {
                "kind": contact["kind"], "date": loc.day(contact["day"]), "agreed": promised},
        }
        name = f"reminder_{loc.language}.txt.j2"
        subject, body = _render(env, name, context)
        amounts = ([ln["amount"] for ln in lines] + [t["amount"] for t in totals] + [c["amount"] for c in credit_lines]
                   + [t["amount"] for t in credit_totals] + [t["amount"] for t in interest] + [t["amount"] for t in fees])
        rows.append({
            "customer_id": int(top.customer_id), "company_id": top.company_id,
            "customer_name": context["customer_name"], "customer_email": a["customer_email"] if a is not None else None,
            "company_name": context["company_name"] or None, "lang": a["customer_lang"] if a is not None else None,
            "locale": loc.locale, "stage": top.stage, "action": top.action, "tone": top.tone,
            "manual_only": bool(top.manual_only) if pd.notna(top.manual_only) else False,
            "subject": subject, "body": body, "template_name": name,
            "invoice_numbers": json.dumps(list(dict.fromkeys([ln["invoice_number"] for ln in lines]))),
            "amounts": json.dumps(list(dict.fromkeys(amounts)), ensure_ascii=False),
            "under_review": json.dumps(context["under_review"]),
            "demand_totals": "; ".join(t["amount"] for t in totals),
            "open_credit": "; ".join(t["amount"] for t in credit_totals) or None,
            "interest_total": "; ".join(t["amount"] for t in interest) or None,
            "fee_total": "; ".join(t["amount"] for t in fees) or None,
            "last_contact_kind": contact["kind"] if contact else None,
            "last_contact_on": contact["day"] if contact else pd.NaT,
            "last_contact_ticket_id": contact["ticket_id"] if contact else None,
            "as_of_date": pd.Timestamp(as_of),
        })
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["customer_id"] = out["customer_id"].astype("int64")
    out["company_id"] = out["company_id"].astype("Int64")
    out["last_contact_ticket_id"] = out["last_contact_ticket_id"].astype("Int64")
    out["manual_only"] = out["manual_only"].astype(bool)
    out["last_contact_on"] = pd.to_datetime(out["last_contact_on"]).astype("datetime64[s]")
    out["as_of_date"] = pd.to_datetime(out["as_of_date"]).astype("datetime64[s]")
    return out


def _render(env, name: str, context: dict) -> tuple[str, str]:
    text = env.get_template(name).render(**context)
    first, _, rest = text.lstrip("\n").partition("\n")
    if not first.startswith("Subject:"):
        raise DraftTemplateError(f"template {name} must start with a line 'Subject: ...', got {first[:60]!r}")
    return first[len("Subject:"):].strip(), rest.strip("\n") + "\n"
