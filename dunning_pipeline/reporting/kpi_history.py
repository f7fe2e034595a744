"""Past days of the receivable balance, rebuilt from Odoo's dated records, for the KPI series.
Pure: no Dagster, no I/O.

The open balance of an invoice on a past day X is, per receivable line (instalment), its amount
minus what the reconciliations dated up to X settled of it (`account.partial.reconcile`:
`amount` in company currency, `debit_amount_currency` / `credit_amount_currency` in the line's
currency, `max_date` the later of the two lines' dates: the rule Odoo's Aged Receivable applies
for a past date). The invoice's residual is the sum of its lines'; its days overdue follow its
oldest instalment still open that day (the rule of `dunning.instalments`), its bucket the same
policy as the nightly aging. Fed to `kpis.day_kpis`, a past day gets the
values a nightly run would have computed on it.

Conventions, where Odoo keeps no date for what happened:
- A move counts from its invoice date on (posted by then); a move posted later with an earlier
  invoice date counts from its invoice date, as its sales do.
- A cancelled move that had been posted (it has a number) counts until the day of its last
  write (Odoo records no cancellation date); one cancelled as a draft never counted.
- A backdated payment counts from its accounting date (as Odoo's report shows that day today),
  not from the day it was entered.
- A move whose stored reconciliations do not add up to its residual today (paid, but no
  receivable lines or reconciliations extracted) is not exact: it counts at its full amount before the
  day of its last write and at today's residual from then on. `Ledger.inexact` counts them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date

from dunning_pipeline import lazy
from dunning_pipeline.dunning.policy import DunningPolicy
from dunning_pipeline.dunning.receivables import CREDIT_NOTE, INVOICE

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

INVOICE_COLUMNS = ["id", "name", "move_type", "state", "company_id", "partner_id", "commercial_partner_id",
                   "currency", "invoice_date", "invoice_date_due", "amount_total", "amount_residual",
                   "amount_total_signed", "amount_residual_signed", "write_date"]
LINE_COLUMNS = ["id", "move_id", "date_maturity", "balance", "amount_currency"]
RECONCILIATION_COLUMNS = ["debit_line_id", "credit_line_id", "amount", "debit_amount_currency",
                          "credit_amount_currency", "max_date"]
AGING_COLUMNS = ["invoice_id", "company_id", "amount_residual_company", "days_overdue", "aging_bucket"]


@dataclass(frozen=True)
class Ledger:
    """The customer moves, their lines and the dated settlements of those lines, prepared once
    for any number of days (`snapshots`)."""

    moves: pd.DataFrame  # one row per move that may have been open on some day
    lines: pd.DataFrame  # their receivable lines, grouped by move (in `moves` order)
    starts: np.ndarray  # position in `lines` of each move's first line (moves with lines)
    with_lines: np.ndarray  # positions in `moves` of the moves that have lines
    settle_day: np.ndarray  # datetime64[D], ascending
    settle_line: np.ndarray  # position in `lines`
    settle_company: np.ndarray  # int64, company currency
    settle_currency: np.ndarray  # int64, the line's currency
    inexact: int  # moves whose reconciliations do not explain today's residual
    reconciliations_used: int  # reconciliation sides applied to a line


def _units(frame: pd.DataFrame, col: str) -> np.ndarray:
    return frame[col].astype("Int64").fillna(0).abs().to_numpy(dtype=np.int64)


def posted_span(invoices: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(counted, ends) per move: whether it was ever posted (posted now, or cancelled after
    being posted: it has a number), and the first day it no longer counts (NaT: still posted;
    a cancelled move: the day of its last write, Odoo keeps no cancellation date)."""
    state = invoices["state"]
    cancelled = ((state == "cancel") & invoices["name"].notna() & (invoices["name"] != "/")
                 & invoices["write_date"].notna())
    ends = pd.to_datetime(invoices["write_date"]).dt.floor("D").astype("datetime64[s]").where(cancelled)
    return (state == "posted") | cancelled, ends


def prepare(invoices: pd.DataFrame, lines: pd.DataFrame, reconciliations: pd.DataFrame,
            policy: DunningPolicy, *, excluded_invoices: Sequence[int] = (),
            excluded_partners: Sequence[int] = ()) -> Ledger:
    """The ledger from the Odoo extracts (`odoo_invoices`, `odoo_receivable_lines`,
    `odoo_reconciliations`), leaving out what the nightly receivables leave out: other move
    types, drafts, moves without a customer or an amount, and quarantined invoices and partners."""
    inv = invoices
    posted_once, ends = posted_span(inv)
    customer = inv["commercial_partner_id"].astype("Int64").fillna(inv["partner_id"].astype("Int64"))
    bad_partner = (inv["commercial_partner_id"].astype("Int64").isin(list(excluded_partners)).fillna(False)
                   | inv["partner_id"].astype("Int64").isin(list(excluded_partners)).fillna(False))
    keep = (inv["move_type"].isin([INVOICE, CREDIT_NOTE]) & posted_once & inv["invoice_date"].notna()
            & customer.notna() & inv["amount_total"].notna() & inv["amount_total_signed"].notna()
            & inv["amount_residual"].notna() & inv["amount_residual_signed"].notna()
            & ~inv["id"].isin(list(excluded_invoices)) & ~bad_partner)
    keep = keep.to_numpy(dtype=bool)
    inv, ends = inv[keep].reset_index(drop=True), ends[keep].reset_index(drop=True)
    order = np.argsort(inv["id"].to_numpy(), kind="stable")
    inv, ends = inv.iloc[order].reset_index(drop=True), ends.iloc[order].reset_index(drop=True)
    invoice_date = pd.to_datetime(inv["invoice_date"]).astype("datetime64[s]")
    written = pd.to_datetime(inv["write_date"]).dt.floor("D").astype("datetime64[s]")
    moves = pd.DataFrame({
        "invoice_id": inv["id"].astype("int64"),
        "move_type": inv["move_type"],
        "company_id": inv["company_id"].astype("Int64"),
        "sign": np.where(inv["move_type"].to_numpy() == CREDIT_NOTE, -1, 1),
        "invoice_date": invoice_date,
        "invoice_date_due": pd.to_datetime(inv["invoice_date_due"]).astype("datetime64[s]"),
        "ends": ends.to_numpy(),  # the first day it no longer counts (cancelled); NaT: posted
        "written": written,
        "total": _units(inv, "amount_total"),
        "total_company": _units(inv, "amount_total_signed"),
        "residual_now": _units(inv, "amount_residual"),
        "residual_company_now": _units(inv, "amount_residual_signed"),
        "tolerance": policy.tolerance_units(inv["company_id"], inv["currency"]).to_numpy(dtype=np.int64),
    })
    # Lines of the posted moves, grouped by move in `moves` order.
    pos = pd.Series(np.arange(len(moves)), index=moves["invoice_id"].to_numpy())
    posted = moves.loc[inv["state"].to_numpy() == "posted", "invoice_id"]
    l = lines[lines["move_id"].astype("int64").isin(posted)].copy()
    l["move_pos"] = l["move_id"].astype("int64").map(pos).to_numpy()
    l = l.sort_values(["move_pos", "date_maturity", "id"], kind="stable").reset_index(drop=True)
    l = pd.DataFrame({"id": l["id"].astype("int64"), "move_id": l["move_id"].astype("int64"),
                      "move_pos": l["move_pos"].astype("int64"),
                      "date_maturity": pd.to_datetime(l["date_maturity"]).astype("datetime64[s]"),
                      "full": _units(l, "amount_currency"), "full_company": _units(l, "balance")})
    with_lines = np.unique(l["move_pos"].to_numpy())
    starts = np.searchsorted(l["move_pos"].to_numpy(), with_lines)

    # Each reconciliation settles its debit line and its credit line (an invoice and a credit
    # note, or an invoice and a payment we do not hold).
    line_pos = pd.Series(np.arange(len(l)), index=l["id"].to_numpy())
    r = reconciliations
    sides = pd.concat([
        pd.DataFrame({"line": r["debit_line_id"].astype("int64").to_numpy(), "company": _units(r, "amount"),
                      "currency": _units(r, "debit_amount_currency"), "day": pd.to_datetime(r["max_date"]).to_numpy()}),
        pd.DataFrame({"line": r["credit_line_id"].astype("int64").to_numpy(), "company": _units(r, "amount"),
                      "currency": _units(r, "credit_amount_currency"), "day": pd.to_datetime(r["max_date"]).to_numpy()}),
    ], ignore_index=True)
    sides = sides[sides["line"].isin(line_pos.index) & sides["day"].notna()]
    sides = sides.assign(line=sides["line"].map(line_pos).astype("int64")).sort_values("day", kind="stable")

    # Exact where the reconciliations explain today's residual of every line of the move.
    settled = np.zeros(len(l), dtype=np.int64)
    settled_company = np.zeros(len(l), dtype=np.int64)
    np.add.at(settled, sides["line"].to_numpy(), sides["currency"].to_numpy(dtype=np.int64))
    np.add.at(settled_company, sides["line"].to_numpy(), sides["company"].to_numpy(dtype=np.int64))
    exact = np.zeros(len(moves), dtype=bool)
    if len(l):
        open_now = np.add.reduceat(l["full"].to_numpy() - settled, starts)
        open_company_now = np.add.reduceat(l["full_company"].to_numpy() - settled_company, starts)
        exact[with_lines] = ((open_now == moves["residual_now"].to_numpy()[with_lines])
                             & (open_company_now == moves["residual_company_now"].to_numpy()[with_lines]))
    # A cancelled move had nothing reconciled (Odoo undoes it first), and a move without lines
    # that is still open in full never was: their full amount is exact.
    unpaid = ((moves["residual_now"] == moves["total"]) & (moves["residual_company_now"] == moves["total_company"]))
    no_lines = np.ones(len(moves), dtype=bool)
    no_lines[with_lines] = False
    exact |= moves["ends"].notna().to_numpy() | (no_lines & unpaid.to_numpy())
    moves["exact"] = exact
    keep_lines = exact[l["move_pos"].to_numpy()] if len(l) else np.zeros(0, dtype=bool)
    if not keep_lines.all():  # an inexact move is taken without its lines
        l = l[keep_lines].reset_index(drop=True)
        old_pos = np.flatnonzero(keep_lines)
        remap = pd.Series(np.arange(len(old_pos)), index=old_pos)
        sides = sides[sides["line"].isin(remap.index)]
        sides = sides.assign(line=sides["line"].map(remap).astype("int64"))
        with_lines = np.unique(l["move_pos"].to_numpy())
        starts = np.searchsorted(l["move_pos"].to_numpy(), with_lines)
    return Ledger(
        moves=moves, lines=l, starts=starts, with_lines=with_lines,
        settle_day=sides["day"].to_numpy().astype("datetime64[D]"),
        settle_line=sides["line"].to_numpy(dtype=np.int64),
        settle_company=sides["company"].to_numpy(dtype=np.int64),
        settle_currency=sides["currency"].to_numpy(dtype=np.int64),
        inexact=int((~exact).sum()), reconciliations_used=len(sides),
    )


def snapshots(ledger: Ledger, days: Sequence[date], policy: DunningPolicy) -> Iterator[tuple[date, pd.DataFrame]]:
    """(day, aging) for each day in ascending order: the receivables open on that day with the
    columns the KPIs read from `invoice_aging` (AGING_COLUMNS; company_id -1 for none)."""
    m, l = ledger.moves, ledger.lines
    settled = np.zeros(len(l), dtype=np.int64)
    settled_company = np.zeros(len(l), dtype=np.int64)
    applied = 0
    full, full_company = l["full"].to_numpy(), l["full_company"].to_numpy()
    invoice_date, ends, written = (m[c].to_numpy().astype("datetime64[D]") for c in ("invoice_date", "ends", "written"))
    sign = m["sign"].to_numpy()
    inexact = ~m["exact"].to_numpy()
    # An invoice without a due date falls due on its invoice date; so does a line without one.
    fallback_due = m["invoice_date_due"].fillna(m["invoice_date"]).to_numpy().astype("datetime64[D]")
    maturity = l["date_maturity"].to_numpy().astype("datetime64[D]")
    if len(l):
        maturity = np.where(np.isnat(maturity), fallback_due[l["move_pos"].to_numpy()], maturity)
    for day in sorted(days):
        d = np.datetime64(day, "D")
        upto = int(np.searchsorted(ledger.settle_day, d, side="right"))
        if upto > applied:
            np.add.at(settled, ledger.settle_line[applied:upto], ledger.settle_currency[applied:upto])
            np.add.at(settled_company, ledger.settle_line[applied:upto], ledger.settle_company[applied:upto])
            applied = upto
        residual = m["total"].to_numpy().copy()
        residual_company = m["total_company"].to_numpy().copy()
        if len(l):
            residual[ledger.with_lines] = np.add.reduceat(full - settled, ledger.starts)
            residual_company[ledger.with_lines] = np.add.reduceat(full_company - settled_company, ledger.starts)
        later = inexact & (written <= d)  # inexact: today's residual from its last write on
        residual[later] = m["residual_now"].to_numpy()[later]
        residual_company[later] = m["residual_company_now"].to_numpy()[later]
        counts = ((invoice_date <= d) & (np.isnat(ends) | (d < ends))
                  & (residual > m["tolerance"].to_numpy()))
        yield day, _aging(m, l, ledger.starts, ledger.with_lines, counts, sign, residual_company, full - settled,
                          full_company - settled_company, fallback_due, maturity, day, policy)


def _aging(m, l, starts, with_lines, counts, sign, residual_company, line_open, line_open_company, fallback_due,
           maturity, day, policy) -> pd.DataFrame:
    """The aging columns of the moves that count on `day`. Days overdue follow the oldest
    instalment still open, as `dunning.instalments` decides it (the lines here always agree with
    their move: both come from the same reconciliations); numpy, as this runs for every day."""
    due = fallback_due.copy()
    if len(l):
        never = np.datetime64("9999-12-31", "D")
        open_maturity = np.where((line_open != 0) | (line_open_company != 0), maturity, never)
        oldest = np.minimum.reduceat(open_maturity, starts)
        some = oldest != never
        due[with_lines[some]] = oldest[some]
    idx = np.flatnonzero(counts)
    days = pd.Series((np.datetime64(day, "D") - due[idx]).astype(np.int64))
    company = m["company_id"].iloc[idx].reset_index(drop=True)
    return pd.DataFrame({
        "invoice_id": m["invoice_id"].to_numpy()[idx],
        "company_id": company.fillna(-1).astype("int64").to_numpy(),
        "amount_residual_company": sign[idx] * residual_company[idx],
        "days_overdue": days.to_numpy(),
        "aging_bucket": policy.aging_bucket(company, days).to_numpy(),
    })
