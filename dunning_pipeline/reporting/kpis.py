"""Collection KPIs per company, in company currency, as of a day. Pure: no Dagster, no I/O.

Inputs (all amounts int64 units of 1/10,000, company currency, signed: credit notes negative):
- `sales`: posted customer invoices and credit notes: company_id, invoice_date, amount (the
  move's `amount_total_signed`). Credit sales are the invoices net of credit notes, dated by
  their invoice date: that makes past sales exact from Odoo's data.
- `aging`: the aging table of the day: company_id, amount_residual_company, days_overdue,
  aging_bucket.
- `history`: the dunning history: invoice_id, customer_id, company_id, to_stage, reason,
  action, as_of_date.
- `inbound`: messages from customers in Zendesk: customer_id, day (local business day).

The formulas, each beside its function below:
- count-back DSO (exhaustion method), best possible DSO, period DSO, average days delinquent,
  collection effectiveness index, collection success rate per stage, customer response rate,
  reminder-to-payment days, aging distribution.

Past days (`kpi_history`): Odoo dates each invoice (its sales) and each reconciliation (the
payments and credit notes applied, `account.partial.reconcile.max_date`), so the balance of a
past day, and with it every balance-based KPI, is rebuilt exactly and computed by `day_kpis`
as a nightly run would have. The history-based KPIs need the dunning history: for days before
it began they are left empty with a note (`HISTORY_KPIS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from dunning_pipeline import lazy
from dunning_pipeline.dunning.communications import AGENT_ROLES, local_day, opened_by_ours
from dunning_pipeline.reporting import kpi_history

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

# Periods (days) of the KPIs that need one: a quarter for the period DSOs, a month for CEI.
DSO_PERIOD_DAYS = 90
CEI_PERIOD_DAYS = 30
SUCCESS_WINDOW_DAYS = 30
RESPONSE_WINDOW_DAYS = 7
REMINDER_TO_PAYMENT_LOOKBACK_DAYS = 90
COUNT_BACK_MAX_MONTHS = 24
REMINDER_ACTIONS = ("email", "letter")
# History reasons after which the stage's action is carried out (a hold freezes the stage and
# sends nothing; a closure ends dunning).
ACTION_REASONS = ("days_overdue", "released", "reopened")
CLOSED, PAID = "closed", "paid"

NIGHTLY, RECONSTRUCTED = "nightly", "reconstructed"
KPI_COLUMNS = ["as_of_date", "company_id", "kpi", "dimension", "company_currency", "value", "amount",
               "numerator", "denominator", "source", "note"]


def _ts(day) -> pd.Timestamp:
    return pd.Timestamp(day).normalize()


def _sales_arrays(sales: pd.DataFrame, as_of: date) -> tuple[np.ndarray, np.ndarray]:
    """(invoice dates, amounts) of the moves posted on the as-of day: `ends` (optional) is the
    first day a move no longer counts (cancelled since). numpy, not pandas masks: a backfill
    computes these for hundreds of days."""
    d = np.asarray(sales["invoice_date"], dtype="datetime64[ns]")
    amounts = sales["amount"].to_numpy(dtype=np.int64)
    if "ends" in sales.columns:
        ends = np.asarray(sales["ends"], dtype="datetime64[ns]")
        then = np.isnat(ends) | (ends > _dt(as_of))
        d, amounts = d[then], amounts[then]
    return d, amounts


def _dt(day) -> np.datetime64:
    return _ts(day).to_datetime64()


def credit_sales(sales: pd.DataFrame, start_exclusive: date, end_inclusive: date) -> int:
    """Credit sales (invoices minus credit notes) dated in (start, end], of the moves posted on
    the end day."""
    d, amounts = _sales_arrays(sales, end_inclusive)
    return int(amounts[(d > _dt(start_exclusive)) & (d <= _dt(end_inclusive))].sum())


# -- DSO ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CountBack:
    days: float | None
    exhausted: bool  # the balance is older than all the months looked at: `days` is a floor


def count_back_dso(ar_total: int, sales: pd.DataFrame, as_of: date,
                   max_months: int = COUNT_BACK_MAX_MONTHS) -> CountBack:
    """Count-back DSO (the "exhaustion" or "countback" method, as taught by the Credit Research
    Foundation and in Salek, *Cash Flow Forecasting*): start from the receivable balance at the
    as-of date and walk back month by month, subtracting each month's credit sales; every month
    fully absorbed adds its number of days; the month that exhausts the balance adds
    (remaining balance / that month's sales) x its days.

    Convention: months are rolling calendar months ending on the as-of date ((as_of - 1 month,
    as_of], then the month before, ...), with their real number of days. A month with no (or
    negative) net sales is absorbed whole. No balance (<= 0): 0 days."""
    if ar_total <= 0:
        return CountBack(0.0, False)
    d, amounts = _sales_arrays(sales, as_of)
    remaining, days = ar_total, 0.0
    end = _ts(as_of)
    for k in range(1, max_months + 1):
        start = _ts(as_of) - pd.DateOffset(months=k)
        length = (end - start).days
        month_sales = int(amounts[(d > start.to_datetime64()) & (d <= end.to_datetime64())].sum())
        if month_sales > 0 and remaining <= month_sales:
            return CountBack(days + remaining / month_sales * length, False)
        remaining -= max(month_sales, 0)
        days += length
        end = start
    return CountBack(days, True)


def period_dso(ar_total: int, sales_in_period: int, days: int = DSO_PERIOD_DAYS) -> float | None:
    """Period ("standard") DSO = receivables / credit sales of the period x days of the period."""
    return None if sales_in_period <= 0 else ar_total / sales_in_period * days


def best_possible_dso(current_ar: int, sales_in_period: int, days: int = DSO_PERIOD_DAYS) -> float | None:
    """Best possible DSO (CRF) = current (not yet due) receivables / credit sales of the period x
    days: the DSO if every customer paid on its due date."""
    return None if sales_in_period <= 0 else current_ar / sales_in_period * days


def average_days_delinquent(ar_total: int, current_ar: int, sales_in_period: int,
                            days: int = DSO_PERIOD_DAYS) -> float | None:
    """Average days delinquent (CRF) = DSO - best possible DSO, both by the period method on the
    same period, which equals past-due receivables / credit sales of the period x days. (Not the
    count-back DSO: mixing methods would make ADD move with the sales pattern alone.)"""
    dso, best = period_dso(ar_total, sales_in_period, days), best_possible_dso(current_ar, sales_in_period, days)
    return None if dso is None or best is None else dso - best


def collection_effectiveness_index(begin_ar: int, sales_in_period: int, end_ar: int,
                                   end_current_ar: int) -> float | None:
    """CEI, in percent, as defined by the Credit Research Foundation (and Investopedia):

        (beginning receivables + credit sales - ending total receivables)
        / (beginning receivables + credit sales - ending CURRENT receivables) x 100

    Sources disagree: some put ending total receivables minus ending current in the
    denominator, others use "collectible" receivables or average balances. We follow the CRF
    form with "current" meaning not yet due at the end of the period, over a 30-day period."""
    denominator = begin_ar + sales_in_period - end_current_ar
    if denominator <= 0:
        return None
    return (begin_ar + sales_in_period - end_ar) / denominator * 100


# -- history-based KPIs -----------------------------------------------------------------------
def _first_entries(history: pd.DataFrame) -> pd.DataFrame:
    """First day each invoice entered each stage (not the closure)."""
    h = history[history["to_stage"] != CLOSED]
    return (h.assign(day=pd.to_datetime(h["as_of_date"])).groupby(["invoice_id", "to_stage"], as_index=False)["day"].min())


def _paid_days(history: pd.DataFrame) -> pd.Series:
    """invoice_id -> day it was closed as paid (the last such closure)."""
    paid = history[(history["to_stage"] == CLOSED) & (history["reason"] == PAID)]
    days = pd.to_datetime(paid["as_of_date"]).astype("datetime64[s]")
    return days.groupby(paid["invoice_id"].astype("int64")).max().astype("datetime64[s]")


def collection_success_rate(history: pd.DataFrame, as_of: date,
                            window: int = SUCCESS_WINDOW_DAYS) -> pd.DataFrame:
    """Per stage: of the invoices that entered the stage at least `window` days before the
    as-of date (so that their window is complete), the share paid within `window` days after
    entering it: entered on day e, closed as paid on a day p with e < p <= e + window.
    Columns: stage, reached, paid, rate (percent; null when none reached it)."""
    entries = _first_entries(history)
    entries = entries[entries["day"] + pd.Timedelta(days=window) <= _ts(as_of)]
    paid_on = pd.Series(_paid_days(history).reindex(entries["invoice_id"].astype("int64")).to_numpy(),
                        index=entries.index, dtype="datetime64[s]")
    entries = entries.assign(paid=(paid_on > entries["day"]) & (paid_on <= entries["day"] + pd.Timedelta(days=window)))
    out = entries.groupby("to_stage").agg(reached=("invoice_id", "size"), paid=("paid", "sum")).reset_index()
    out = out.rename(columns={"to_stage": "stage"})
    out["rate"] = out["paid"] / out["reached"] * 100
    return out


def reminders(history: pd.DataFrame) -> pd.DataFrame:
    """Reminders sent: history rows after which a reminder goes out (an email or letter stage
    entered by the calendar, or resumed after a hold), one per customer and day (a customer
    gets one message listing its invoices). Columns: customer_id, day."""
    h = history[history["action"].isin(REMINDER_ACTIONS) & history["reason"].isin(ACTION_REASONS)
                & (history["to_stage"] != CLOSED)]
    if "manual_only" in h.columns:
        h = h[~h["manual_only"].astype("boolean").fillna(False).astype(bool)]
    out = pd.DataFrame({"customer_id": h["customer_id"].astype("int64"), "day": pd.to_datetime(h["as_of_date"])})
    return out.drop_duplicates().reset_index(drop=True)


def customer_response_rate(history: pd.DataFrame, inbound: pd.DataFrame, as_of: date,
                           window: int = RESPONSE_WINDOW_DAYS) -> tuple[int, int]:
    """Share of reminders followed by a reply of the customer in Zendesk within `window` days:
    a reminder on day r (of those with r + window <= as-of, so that the window is complete) is
    answered when a customer message is dated r <= d <= r + window (the nightly run sends before
    the business day starts, so a reply on day r comes after it). Returns (answered, reminders)."""
    rem = reminders(history)
    rem = rem[rem["day"] + pd.Timedelta(days=window) <= _ts(as_of)]
    if rem.empty:
        return 0, 0
    msgs = pd.DataFrame({"customer_id": inbound["customer_id"].astype("int64"),
                         "msg_day": pd.to_datetime(inbound["day"])})
    pairs = rem.reset_index().merge(msgs, on="customer_id")
    hit = pairs[(pairs["msg_day"] >= pairs["day"]) & (pairs["msg_day"] <= pairs["day"] + pd.Timedelta(days=window))]
    return int(hit["index"].nunique()), len(rem)


def reminder_to_payment_days(history: pd.DataFrame, as_of: date,
                             lookback: int = REMINDER_TO_PAYMENT_LOOKBACK_DAYS) -> tuple[float | None, int]:
    """Mean days from an invoice's first reminder to its payment, over the invoices closed as
    paid in the `lookback` days up to the as-of date that had a reminder before. (mean, count)"""
    paid_on = _paid_days(history)
    paid_on = paid_on[(paid_on > _ts(as_of) - pd.Timedelta(days=lookback)) & (paid_on <= _ts(as_of))]
    h = history[history["action"].isin(REMINDER_ACTIONS) & history["reason"].isin(ACTION_REASONS)]
    first = pd.to_datetime(h["as_of_date"]).groupby(h["invoice_id"]).min()
    both = pd.DataFrame({"paid": paid_on, "first": first.reindex(paid_on.index)}).dropna()
    both = both[both["first"] <= both["paid"]]
    if both.empty:
        return None, 0
    return float((both["paid"] - both["first"]).dt.days.mean()), len(both)


# -- distribution ------------------------------------------------------------------------------
def aging_distribution(aging: pd.DataFrame, bucket_order: tuple[str, ...]) -> pd.DataFrame:
    """Open balance per aging bucket and its share of the total, in percent (credit notes in
    their own buckets, negative). Columns: aging_bucket, amount, share."""
    labelled = aging["aging_bucket"].notna().to_numpy()
    labels = aging["aging_bucket"].to_numpy(dtype=object)[labelled]
    order = [*bucket_order, *sorted(set(labels) - set(bucket_order))]
    at = {b: i for i, b in enumerate(order)}
    amounts = np.zeros(len(order), dtype=np.int64)  # exact sums (numpy: computed for every past day too)
    np.add.at(amounts, np.fromiter((at[b] for b in labels), dtype=np.int64, count=len(labels)),
              aging["amount_residual_company"].to_numpy(dtype=np.int64)[labelled])
    total = int(amounts.sum())
    share = amounts / total * 100 if total else np.full(len(order), np.nan)
    return pd.DataFrame({"aging_bucket": order, "amount": amounts, "share": share})


# -- one day's rows ------------------------------------------------------------------------------
def _row(kpi: str, *, value=None, amount=None, numerator=None, denominator=None, dimension: str = "",
         note: str | None = None) -> dict:
    return {"kpi": kpi, "dimension": dimension, "value": value, "amount": amount,
            "numerator": numerator, "denominator": denominator, "note": note}


HISTORY_KPIS = ("collection_success_rate", "customer_response_rate", "reminder_to_payment_days")


def history_kpis(history: pd.DataFrame, inbound: pd.DataFrame, as_of: date) -> list[dict]:
    """The KPIs that need only dated events (history, Zendesk): exact for any past day."""
    rows = []
    success = collection_success_rate(history, as_of)
    if success.empty:
        rows.append(_row("collection_success_rate", note=f"no invoice entered a stage {SUCCESS_WINDOW_DAYS}+ days before"))
    for s in success.itertuples():
        rows.append(_row("collection_success_rate", dimension=s.stage, value=float(s.rate),
                         numerator=float(s.paid), denominator=float(s.reached)))
    answered, sent = customer_response_rate(history, inbound, as_of)
    rows.append(_row("customer_response_rate", value=answered / sent * 100 if sent else None,
                     numerator=float(answered), denominator=float(sent),
                     note=None if sent else f"no reminder sent {RESPONSE_WINDOW_DAYS}+ days before"))
    mean, n = reminder_to_payment_days(history, as_of)
    rows.append(_row("reminder_to_payment_days", value=mean, denominator=float(n),
                     note=None if n else f"no reminded invoice paid in the last {REMINDER_TO_PAYMENT_LOOKBACK_DAYS} days"))
    return rows


def day_kpis(
    *,
    as_of: date,
    sales: pd.DataFrame,
    aging: pd.DataFrame,
    history: pd.DataFrame,
    inbound: pd.DataFrame,
    bucket_order: tuple[str, ...],
    begin_ar: int | None,
    no_history: str | None = None,
) -> list[dict]:
    """Every KPI of one company on its as-of day. `begin_ar`: the receivable balance recorded
    CEI_PERIOD_DAYS before (from the series), or None when the series has no such day.
    `no_history`: why the history-based KPIs cannot be computed for this day (a past day
    before the dunning history began); they are then left empty with that note."""
    ar_total = int(aging["amount_residual_company"].sum())
    current = int(aging.loc[aging["days_overdue"] <= 0, "amount_residual_company"].sum())
    past_due = ar_total - current
    s90 = credit_sales(sales, as_of - timedelta(days=DSO_PERIOD_DAYS), as_of)
    s30 = credit_sales(sales, as_of - timedelta(days=CEI_PERIOD_DAYS), as_of)
    no_sales = f"no credit sales in the last {DSO_PERIOD_DAYS} days"
    cb = count_back_dso(ar_total, sales, as_of)
    rows = [
        _row("ar_total", amount=ar_total),
        _row("ar_current", amount=current),
        _row("ar_past_due", amount=past_due),
        _row("credit_sales_30d", amount=s30),
        _row("credit_sales_90d", amount=s90),
        _row("dso_count_back", value=cb.days,
             note=f"balance older than {COUNT_BACK_MAX_MONTHS} months of sales: a floor" if cb.exhausted else None),
        _row("dso_period", value=period_dso(ar_total, s90), numerator=float(ar_total), denominator=float(s90),
             note=None if s90 > 0 else no_sales),
        _row("best_possible_dso", value=best_possible_dso(current, s90), numerator=float(current),
             denominator=float(s90), note=None if s90 > 0 else no_sales),
        _row("average_days_delinquent", value=average_days_delinquent(ar_total, current, s90),
             numerator=float(past_due), denominator=float(s90), note=None if s90 > 0 else no_sales),
    ]
    if begin_ar is None:
        rows.append(_row("collection_effectiveness_index",
                         note=f"needs the receivable balance of {as_of - timedelta(days=CEI_PERIOD_DAYS)}, "
                              "which the series does not hold"))
    else:
        cei = collection_effectiveness_index(begin_ar, s30, ar_total, current)
        rows.append(_row("collection_effectiveness_index", value=cei,
                         numerator=float(begin_ar + s30 - ar_total), denominator=float(begin_ar + s30 - current),
                         note=None if cei is not None else "nothing was collectible in the period"))
    for d in aging_distribution(aging, bucket_order).itertuples():
        rows.append(_row("aging_distribution", dimension=d.aging_bucket, amount=int(d.amount),
                         value=None if pd.isna(d.share) else float(d.share)))
    if no_history is None:
        rows += history_kpis(history, inbound, as_of)
    else:
        rows += [_row(kpi, note=no_history) for kpi in HISTORY_KPIS]
    return rows


def keyed(rows: list[dict], *, as_of: date, company_id: int, company_currency: str | None,
          source: str) -> list[dict]:
    """The rows of one company and day with their keys (for `typed_frame`)."""
    keys = {"as_of_date": pd.Timestamp(as_of), "company_id": int(company_id),
            "company_currency": company_currency, "source": source}
    return [{**r, **keys} for r in rows]


def to_frame(rows: list[dict], *, as_of: date, company_id: int, company_currency: str | None,
             source: str) -> pd.DataFrame:
    return typed_frame(keyed(rows, as_of=as_of, company_id=company_id, company_currency=company_currency,
                             source=source))


def typed_frame(records: list[dict]) -> pd.DataFrame:
    """Keyed rows (of any days and companies) as a frame with the series' columns and types."""
    frame = pd.DataFrame(records, columns=KPI_COLUMNS)
    frame["as_of_date"] = pd.to_datetime(frame["as_of_date"])
    frame["company_id"] = frame["company_id"].astype("int64")
    frame["value"] = pd.to_numeric(frame["value"]).astype("float64")
    frame["amount"] = frame["amount"].astype("Int64")
    for col in ("numerator", "denominator"):
        frame[col] = pd.to_numeric(frame[col]).astype("float64")
    return frame[KPI_COLUMNS]


# -- inputs --------------------------------------------------------------------------------------
def sales_frame(invoices: pd.DataFrame) -> pd.DataFrame:
    """Credit sales from the Odoo extract: customer invoices and credit notes with an invoice
    date, amount_total_signed (company currency, credit notes negative), posted now or until
    they were cancelled (`ends`, see `kpi_history.posted_span`: a past day counts them)."""
    counted, ends = kpi_history.posted_span(invoices)
    keep = (counted & invoices["invoice_date"].notna() & invoices["amount_total_signed"].notna()).to_numpy(dtype=bool)
    posted = invoices[keep]
    return pd.DataFrame({"company_id": posted["company_id"].astype("Int64").fillna(-1).astype("int64"),
                         "invoice_date": pd.to_datetime(posted["invoice_date"]),
                         "amount": posted["amount_total_signed"].astype("int64"),
                         "ends": ends[keep]}).reset_index(drop=True)


def inbound_messages(tickets: pd.DataFrame, comments: pd.DataFrame, users: pd.DataFrame,
                     communications: pd.DataFrame, tz) -> pd.DataFrame:
    """Messages from customers: a ticket they opened, and public comments by anyone who is not
    an agent, on tickets matched to a customer. Columns: customer_id, day (business day in `tz`)."""
    owner = (communications.dropna(subset=["customer_id"]).drop_duplicates("ticket_id")
             .set_index("ticket_id")["customer_id"].astype("int64"))
    role = users.set_index(users["id"].astype("int64"))["role"]
    c = comments[comments["ticket_id"].astype("int64").isin(owner.index)]
    author_role = c["author_id"].astype("Int64").map(role)
    customer_side = ~author_role.isin(AGENT_ROLES).to_numpy(dtype=bool) & c["public"].astype("boolean").fillna(True).to_numpy(dtype=bool)
    c = c[customer_side]
    t = tickets[tickets["id"].astype("int64").isin(owner.index)]
    # Not a ticket one of ours opened for the customer (a reminder sent as a new ticket).
    t = t[~t["requester_id"].astype("Int64").map(role).isin(AGENT_ROLES).to_numpy(dtype=bool)
          & ~opened_by_ours(t["id"], comments, role.isin(AGENT_ROLES))]
    frames = [pd.DataFrame({"customer_id": c["ticket_id"].astype("int64").map(owner).to_numpy(),
                            "day": local_day(c["created_at"], tz).to_numpy()}),
              pd.DataFrame({"customer_id": t["id"].astype("int64").map(owner).to_numpy(),
                            "day": local_day(t["created_at"], tz).to_numpy()})]
    out = pd.concat(frames, ignore_index=True).dropna()
    return out.astype({"customer_id": "int64"}).drop_duplicates().reset_index(drop=True)
