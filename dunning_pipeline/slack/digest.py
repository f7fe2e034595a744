"""The weekly digest of dunning stage changes, rendered as Slack Block Kit messages.

Pure: a frame of `dunning_history` rows in (with the invoices' current `invoice_aging` state
joined as `now_*` columns, see `alert.read_history`), a list of messages (fallback text + block
dicts) out; no Dagster, no I/O, no clock. The blocks are built with slack_sdk's block models,
whose `to_dict()` validates Slack's limits, and the packing below keeps every message within
them: at most 50 blocks, 3,000 characters per section text, 150 per header, and a cumulative
text budget (Slack rejects messages of about 12,000 characters with `msg_blocks_too_long`).
A long week becomes several messages (posted as a thread); nothing is cut silently.

What an accountant reads:
- one line per customer in the whole alert, in the section of its most urgent change; its head
  (stage, amount, days overdue) describes exactly the invoices at its highest stage, and every
  other changed invoice of the customer is folded into the same line, each described by itself;
- amounts in each invoice's own currency, as of the alert (the current `invoice_aging`), with
  company-currency totals in the header; days overdue say as of which day;
- a payment on its way (`in_payment`) is counted in the header and never shown as a 0.00 hold:
  it is folded into its customer's line with what was owed, and a customer with nothing else
  gets its line in the last section, always in the thread;
- a first alert (after installation or a long gap) is a summary: totals and the customers that
  need action now, top first; every other line follows in the thread.
Stage names, labels and actions come from the dunning policy (`dunning.policy`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from types import SimpleNamespace

from slack_sdk.models.blocks import (
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from dunning_pipeline import lazy, money
from dunning_pipeline.dunning.policy import (
    ACTION_TODO,
    CLOSED,
    DEFAULT_POLICY_FILE,
    Stage,
    default_label,
    load_policy,
)

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

RESOLVED_REASONS = ("paid", "credited", "cancelled")
HOLD_REASON = "hold"
RELEASED_REASON = "released"
IN_PAYMENT = "in_payment"
# Period.summary: why an alert is a summary with the lines in the thread.
FIRST_ALERT = "first"
LONG_GAP = "gap"


@lru_cache(maxsize=1)
def default_stages() -> tuple[Stage, ...]:
    """The stages of the policy shipped with the package (tests and previews without a policy)."""
    return load_policy(DEFAULT_POLICY_FILE).display_stages()


@dataclass(frozen=True)
class Limits:
    """Slack's limits, how many messages one alert may take before it says what it left out,
    and how much of a customer or a summary is shown before "and N more"."""

    blocks_per_message: int = 50
    section_chars: int = 3000
    header_chars: int = 150
    # Sum of the text of all blocks of one message; Slack's undocumented cap is near 12,000.
    message_chars: int = 10_000
    max_messages: int = 20
    # Invoices shown per group of a customer line (the largest), then "and N more, total ...".
    invoices_per_group: int = 3
    # Customer lines in the first message of a summary alert; the rest is in the thread.
    summary_lines: int = 10


@dataclass(frozen=True)
class Links:
    """Where invoice numbers and ticket ids link to; without a base URL they are plain text.
    `invoice_path` may use `{company_id}` too (e.g. Odoo's `cids`), as numbers are only unique
    per company."""

    odoo_url: str | None = None
    zendesk_url: str | None = None
    invoice_path: str = "/odoo/action-account.action_move_out_invoice_type/{invoice_id}"

    def invoice(self, invoice_id: int, company_id: int | None = None) -> str | None:
        if not self.odoo_url:
            return None
        path = self.invoice_path.format(invoice_id=int(invoice_id),
                                        company_id="" if company_id is None else int(company_id))
        return self.odoo_url.rstrip("/") + path

    def ticket(self, ticket_id: int) -> str | None:
        if not self.zendesk_url:
            return None
        return f"{self.zendesk_url.rstrip('/')}/agent/tickets/{int(ticket_id)}"


@dataclass(frozen=True)
class Period:
    """The history an alert covers: `as_of_date` in (start - 1 day, end], plus `late_rows` rows
    dated earlier that were recorded after the previous alert. `start` None: from the beginning.
    `summary` (FIRST_ALERT or LONG_GAP): the alert opens with a summary, its lines in the thread."""

    end: date
    start: date | None = None
    late_rows: int = 0
    summary: str | None = None

    def describe(self) -> str:
        if self.start is None:
            return f"up to {self.end.isoformat()}"
        if self.start == self.end:
            return self.end.isoformat()
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


@dataclass
class AlertMessage:
    """One chat.postMessage payload: `text` is the plain-text fallback and notification."""

    text: str
    blocks: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"text": self.text, "blocks": self.blocks}


# -- escaping and formatting ----------------------------------------------------------------------
def escape(text: object) -> str:
    """User data for mrkdwn: Slack's three control characters as HTML entities."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str | None, label: str) -> str:
    """`<url|label>` with an escaped label, or the escaped label alone when there is no URL."""
    if not url:
        return escape(label)
    # A '|' or '>' would end the URL part early; '&' is sent as an entity, as Slack expects.
    safe_url = url.replace("&", "&amp;").replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    return f"<{safe_url}|{escape(label)}>"


def _clip(text: str, limit: int) -> str:
    """A display name cut to `limit` characters, visibly (an ellipsis), so one row fits a block."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _amounts(units_by_currency: Mapping[str, int]) -> str:
    """'1,234.50 EUR + 120,000 JPY': each currency with its own decimals, biggest first."""
    if not units_by_currency:
        return "no amount"
    return " + ".join(
        money.format_amount(units, cur or None)
        for cur, units in sorted(units_by_currency.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def _sum_by_currency(rows, amount: str = "amt", currency: str = "cur") -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        cur = getattr(r, currency) or ""
        out[cur] = out.get(cur, 0) + int(getattr(r, amount) or 0)
    return out


def _days(n: int | None) -> list[str]:
    if n is None:
        return []
    if n < 0:
        return [f"due in {-n} d"]
    if n == 0:
        return ["due today"]
    return [f"{n} d overdue"]


def _days_on(n: int | None, on: date | None) -> list[str]:
    """Days overdue with the day they are counted on: '41 days overdue on 2026-03-02'."""
    if n is None or on is None:
        return []
    if n > 0:
        return [f"{n} day{'s' if n != 1 else ''} overdue on {on.isoformat()}"]
    if n == 0:
        return [f"due today, {on.isoformat()}"]
    return [f"due {(on + timedelta(days=-n)).isoformat()}"]


# The engine's hold reasons (dunning.holds.PRIORITY), as an accountant reads them.
HOLD_LABELS = {
    "dispute": "disputed",
    "payment_claimed": "customer says paid: check the bank",
    "promise": "payment promised",
    "exclusion": "excluded by hand",
    "in_payment": "payment on its way",
    "net_credit": "covered by credit notes",
    "blocked": "payment blocked in Odoo",
}


def _hold_label(row) -> str:
    reason = row.hold_reason if isinstance(row.hold_reason, str) and row.hold_reason else "hold"
    label = HOLD_LABELS.get(reason, reason.replace("_", " "))
    until = _as_date(getattr(row, "hold_until", None))
    return escape(f"{label} until {until.isoformat()}" if until else label)


def _as_date(value) -> date | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, datetime):  # pd.Timestamp too
        return value.date()
    if isinstance(value, date):
        return value
    return pd.Timestamp(value).date()


def _int_or_none(value) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


# -- classification -----------------------------------------------------------------------------
# A customer's line goes to the section of its most urgent invoice, in this order.
SECTION_ORDER = ("action", "escalated", "newly_overdue", "on_hold", "other", "resolved", "in_payment")
SECTION_TITLES = {
    "action": ":rotating_light: *Needs action now*",
    "escalated": ":arrow_up: *Escalated*",
    "newly_overdue": ":hourglass_flowing_sand: *Newly overdue*",
    "on_hold": ":double_vertical_bar: *On hold*",
    "other": ":information_source: *Other changes*",
    "resolved": ":white_check_mark: *Resolved*",
    "in_payment": ":incoming_envelope: *Payment on its way*",
}
SECTION_NAMES = {
    "action": "Needs action now",
    "escalated": "Escalated",
    "newly_overdue": "Newly overdue",
    "on_hold": "On hold",
    "other": "Other changes",
    "resolved": "Resolved",
    "in_payment": "Payment on its way",
}
DUNNING_SECTIONS = ("action", "escalated", "newly_overdue", "other")
# Invoice kinds, and the order of a line's folded groups (after the head).
KIND_ORDER = {"dunning": 0, "hold": 1, "in_payment": 2, "resolved": 3}

# The current state of an invoice (its `invoice_aging` row when the alert is rendered), joined
# onto every history row by `alert.read_history`; all optional.
NOW_COLUMNS = ("now_as_of_date", "now_currency", "now_company_currency", "now_amount_residual",
               "now_amount_residual_company", "now_days_overdue", "now_due_date",
               "now_instalment_number", "now_instalments_total", "now_amount_total",
               "now_amount_total_company")


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series(pd.NA, index=frame.index, dtype=object)


def _last_nonzero(h: pd.DataFrame, column: str, index: pd.Index) -> pd.Series:
    if column not in h.columns:
        return pd.Series(pd.NA, index=index, dtype="Int64")
    nonzero = h[h[column].fillna(0) != 0]
    return nonzero.groupby("invoice_id", sort=False)[column].last().reindex(index).astype("Int64")


def _first_present(*series: pd.Series) -> pd.Series:
    out = series[0]
    for s in series[1:]:
        out = out.where(out.notna(), s)
    return out


def invoice_states(history: pd.DataFrame, stages: Sequence[Stage], period_end: date) -> pd.DataFrame:
    """One row per invoice: its last history row of the period, where it entered the period
    (`entry_stage`), its ticket, the stages it jumped, its digest `category` and `kind`, and
    what the alert shows of it now: `cur`/`amt` (invoice currency), `amt_company`, `days`
    overdue as of `days_on`, the due instalment."""
    order = [c for c in ("as_of_date", "id") if c in history.columns]
    h = history.sort_values(order, kind="stable") if order else history
    grouped = h.groupby("invoice_id", sort=False)
    last = grouped.tail(1).set_index("invoice_id")
    first = grouped.head(1).set_index("invoice_id")
    out = last.copy()
    idx = out.index
    out["entry_stage"] = first["from_stage"]
    out["jumped"] = grouped["stages_skipped"].sum(min_count=1) if "stages_skipped" in h else pd.NA
    tickets = h[h["ticket_id"].notna()].groupby("invoice_id", sort=False)["ticket_id"].last()
    out["ticket_id"] = tickets.reindex(idx)

    # Dictionary lookups (hash joins), not Python per row: this runs over every changed invoice.
    ranks = {s.name: i for i, s in enumerate(stages)}
    acts = {s.name: s.needs_action for s in stages}
    dues = {s.name: s.overdue for s in stages}
    to_stage, entry_stage = out["to_stage"].astype(object), out["entry_stage"].astype(object)
    rank = to_stage.map(ranks).fillna(-1).astype("int64")
    entry_rank = entry_stage.map(ranks).fillna(-1).astype("int64")
    needs_action = to_stage.map(acts).fillna(False).astype(bool)
    if "action" in out.columns:  # the engine records each row's action (custom policies too)
        needs_action = needs_action.where(out["action"].isna(), out["action"].ne("email")).astype(bool)
    if "manual_only" in out.columns:  # manual-only policies leave even emails to a person
        needs_action = needs_action | out["manual_only"].fillna(False).astype(bool)
    overdue = to_stage.map(dues).fillna(False).astype(bool)
    entry_overdue = entry_stage.map(dues).fillna(False).astype(bool)

    reason = out["reason"]
    resolved = reason.isin(RESOLVED_REASONS) | out["to_stage"].eq(CLOSED)
    hold = ~resolved & reason.eq(HOLD_REASON)
    in_payment = hold & out["hold_reason"].eq(IN_PAYMENT).fillna(False).astype(bool)
    up = rank > entry_rank
    action = ~resolved & ~hold & needs_action & (up | reason.eq(RELEASED_REASON))
    newly = ~resolved & ~hold & ~action & up & overdue & ~entry_overdue
    escalated = ~resolved & ~hold & ~action & ~newly & up & entry_overdue
    category = pd.Series("other", index=idx, dtype=object)
    kind = pd.Series("dunning", index=idx, dtype=object)
    for mask, name in ((resolved, "resolved"), (hold, "on_hold"), (in_payment, "in_payment"),
                       (action, "action"), (newly, "newly_overdue"), (escalated, "escalated")):
        category[mask.to_numpy(dtype=bool)] = name
    for mask, name in ((resolved, "resolved"), (hold, "hold"), (in_payment, "in_payment")):
        kind[mask.to_numpy(dtype=bool)] = name
    out["category"], out["kind"], out["stage_rank"] = category, kind, rank

    # What is shown: the current aging for invoices still open, else the history's last word.
    present = _col(out, "now_as_of_date").notna() & ~resolved
    out["cur"] = _first_present(_col(out, "now_currency").where(present), out["currency"],
                                out["company_currency"])
    out["ccur"] = _first_present(_col(out, "now_company_currency").where(present), out["company_currency"])
    now_amt = _col(out, "now_amount_residual").where(present)
    now_amt_c = _col(out, "now_amount_residual_company").where(present)
    open_amt = _first_present(now_amt, out["amount_residual"])
    open_amt_c = _first_present(now_amt_c, out["amount_residual_company"])
    # Closed, or a payment on its way (residual 0 in Odoo): what was owed before.
    was = _first_present(_last_nonzero(h, "amount_residual", idx), _col(out, "prior_amount_residual"),
                         _col(out, "now_amount_total").where(in_payment))
    was_c = _first_present(_last_nonzero(h, "amount_residual_company", idx),
                           _col(out, "prior_amount_residual_company"),
                           _col(out, "now_amount_total_company").where(in_payment),
                           out["amount_residual_company"])
    same = out["currency"].eq(out["company_currency"]).fillna(False).astype(bool)
    was = _first_present(was, was_c.where(same), out["amount_residual"])
    settled = (resolved | in_payment).to_numpy(dtype=bool)
    out["amt"] = pd.to_numeric(open_amt.where(~settled, was)).fillna(0).astype("int64")
    out["amt_company"] = pd.to_numeric(open_amt_c.where(~settled, was_c)).fillna(0).astype("int64")
    due = pd.to_datetime(_first_present(_col(out, "now_due_date").where(present), out["invoice_date_due"]))
    out["due_date"] = due
    end = pd.Timestamp(period_end)
    computed = (end - due).dt.days.astype("Int64")
    out["days"] = _first_present(_col(out, "now_days_overdue").where(present), computed).astype("Int64")
    on = pd.to_datetime(_col(out, "now_as_of_date").where(present))
    out["days_on"] = on.where(on.notna(), end)
    out["inst_no"] = _col(out, "now_instalment_number").where(present)
    out["inst_total"] = _col(out, "now_instalments_total").where(present)
    # Numbers are unique per company only: a number two companies use is shown with its company.
    numbers = out[["invoice_number", "company_id"]].drop_duplicates()
    shared = numbers["invoice_number"][numbers["invoice_number"].duplicated()].unique()
    out["ambiguous"] = out["invoice_number"].isin(shared)
    return out.reset_index()


def line_groups(states: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Where each invoice is shown, vectorised: one line per customer, in the section of its
    most urgent invoice; the line's head is its invoices at its highest stage (its dunned ones
    when it has any, else its held ones; all resolved or all on their way otherwise); the other
    invoices are folded groups. Returns `states` ordered so that each line is a contiguous run
    (head first, then groups, biggest first) and one row per line in display order (section
    order, then biggest head amount first) with its `start`/`stop` rows."""
    prio = {name: i for i, name in enumerate(SECTION_ORDER)}
    s = states.assign(_prio=states["category"].map(prio))
    cust = s["customer_id"]
    best = s.groupby("customer_id")["_prio"].transform("min")
    s["line_section"] = best.map(dict(enumerate(SECTION_ORDER)))
    head_kind = s["line_section"].map(
        {**dict.fromkeys(DUNNING_SECTIONS, "dunning"), "on_hold": "hold", "resolved": "resolved",
         "in_payment": "in_payment"})
    same_kind = s["kind"].eq(head_kind)
    top = s["stage_rank"].where(same_kind).groupby(cust).transform("max")
    ranked = head_kind.isin(["dunning", "hold"])
    s["is_head"] = same_kind & (~ranked | s["stage_rank"].eq(top))
    # Folded groups: per stage for dunned and held invoices (highest first), then the others.
    group = s["kind"].map(KIND_ORDER) * 1000 + np.where(s["kind"].isin(["dunning", "hold"]),
                                                         999 - s["stage_rank"], 0)
    s["group_order"] = np.where(s["is_head"], -1, group)
    s["_head_amt"] = s["amt_company"].where(s["is_head"], 0)
    key = ["line_section", "customer_id"]
    lines = (s.groupby(key, sort=False)
             .agg(total=("_head_amt", "sum"), name=("customer_name", "first"), invoices=("amt", "size"))
             .reset_index())
    lines["order"] = lines["line_section"].map(prio)
    lines["name_key"] = lines["name"].fillna("").astype(str).str.lower()
    lines = lines.sort_values(["order", "total", "name_key", "customer_id"],
                              ascending=[True, False, True, True], kind="stable").reset_index(drop=True)
    lines["line_no"] = np.arange(len(lines))
    s = s.merge(lines[key + ["line_no"]], on=key, how="left")
    s["_neg_amt"] = -s["amt_company"]
    s["_number"] = s["invoice_number"].fillna("").astype(str)
    s = s.sort_values(["line_no", "group_order", "_neg_amt", "_number"], kind="stable").reset_index(drop=True)
    bounds = np.searchsorted(s["line_no"].to_numpy(), np.arange(len(lines) + 1))
    lines["start"], lines["stop"] = bounds[:-1], bounds[1:]
    return s, lines


# -- lines --------------------------------------------------------------------------------------
@dataclass
class Line:
    """One customer: a head (who, what to do, for which invoices) and groups of invoice items."""

    section: str
    customer_id: int
    name: str
    head: str
    groups: list[str]
    sort_amount: int


def _stage_of(name: str | None, stages: Mapping[str, Stage]) -> Stage | None:
    return stages.get(name) if isinstance(name, str) else None


def _stage_label(name: str | None, stages: Mapping[str, Stage]) -> str:
    if name is None or (isinstance(name, float) and pd.isna(name)):
        return "none"
    if name == CLOSED:
        return "Closed"
    stage = stages.get(name)
    return stage.display if stage is not None else default_label(str(name))


def _number(row, links: Links) -> str:
    number = _clip(str(row.invoice_number or f"id {row.invoice_id}"), 60)
    if row.ambiguous and row.company_id is not None:
        number = f"{number} (company {int(row.company_id)})"
    return link(links.invoice(row.invoice_id, row.company_id), number)


def _instalment(row) -> list[str]:
    total = _int_or_none(row.inst_total)
    number = _int_or_none(row.inst_no)
    due = _as_date(row.due_date)
    if not total or total < 2 or not number or due is None:
        return []
    return [f"instalment {number} of {total} due {due.isoformat()}"]


def _item(row, links: Links, stages: Mapping[str, Stage], links_tickets: bool = True) -> str:
    """One invoice, described by itself: its stage, days and amount."""
    label = _number(row, links)
    amount = money.format_amount(int(row.amt), row.cur or None)
    ticket = [f"ticket {link(links.ticket(row.ticket_id), f'#{int(row.ticket_id)}')}"] \
        if row.ticket_id is not None else []
    if row.kind == "resolved":
        return f"{label} ({escape(row.reason)} {_as_date(row.as_of_date).isoformat()}, {amount})"
    if row.kind == "in_payment":  # Odoo shows a residual of 0: the amount is what was owed before
        known = [amount] if int(row.amt) else ["amount not recorded"]
        return f"{label} ({', '.join(known)}, was at {_stage_label(row.to_stage, stages)})"
    if row.kind == "hold":
        details = [_hold_label(row), f"at {_stage_label(row.to_stage, stages)}"]
    else:
        entry = row.entry_stage
        if entry is None:
            details = [f"entered {_stage_label(row.to_stage, stages)}"]
        else:
            details = [f"{_stage_label(entry, stages)} → {_stage_label(row.to_stage, stages)}"]
        if row.reason != "days_overdue":
            details.append(escape(str(row.reason).replace("_", " ")))
        jumped = _int_or_none(row.jumped)
        if jumped:
            details.append(f"skipped {jumped} stage{'s' if jumped != 1 else ''}")
    details += _instalment(row) + _days(_int_or_none(row.days)) + [amount] + ticket
    return f"{label} ({', '.join(details)})"


def _todo(row, stage: Stage | None) -> str:
    action = getattr(row, "action", None)
    if not isinstance(action, str) or not action:
        action = stage.action if stage is not None else None
    todo = stage.todo if stage is not None and stage.action == action else ACTION_TODO.get(action, action or "act")
    manual = getattr(row, "manual_only", None)
    if manual is not None and not pd.isna(manual) and bool(manual):
        todo += " (by hand: manual-only policy)"
    return todo


def _items(rows: list, links: Links, stages: Mapping[str, Stage], limit: int) -> str:
    """The few largest invoices of a group, then 'and N more, total ...' for the rest."""
    shown = [_item(r, links, stages) for r in rows[:limit]]
    rest = rows[limit:]
    if rest:
        shown.append(f"and {len(rest)} more, total {_amounts(_sum_by_currency(rest))}")
    return " · ".join(shown)


def _group_title(rows: list, stages: Mapping[str, Stage]) -> str:
    r = rows[0]
    label = _stage_label(r.to_stage, stages)
    n = len(rows)
    what = f"{n} invoice{'s' if n != 1 else ''}"
    if r.kind == "hold":
        return f"also on hold at {label}, {what}"
    if r.kind == "in_payment":
        return f"also {what} with payment on its way"
    if r.kind == "resolved":
        return f"also {what} closed"
    return f"also at {label}, {what}"


_LINE_COLUMNS = ("invoice_id", "invoice_number", "company_id", "customer_id", "customer_name", "cur",
                 "amt", "amt_company", "reason", "to_stage", "entry_stage", "stage_rank", "days",
                 "days_on", "due_date", "inst_no", "inst_total", "as_of_date", "hold_reason",
                 "hold_until", "jumped", "ticket_id", "action", "manual_only", "kind", "is_head",
                 "group_order", "ambiguous")


class _Records:
    """Rows as plain objects, converted a chunk at a time as lines are rendered (in row order):
    only what is shown pays, and pandas row access is far slower than attribute reads."""

    CHUNK = 2048

    def __init__(self, frame: pd.DataFrame):
        self._frame = frame
        self._present = [c for c in _LINE_COLUMNS if c in frame.columns]
        self._blank = dict.fromkeys(c for c in _LINE_COLUMNS if c not in frame.columns)
        self._start, self._cols = -1, {}

    def _row(self, i: int) -> SimpleNamespace:
        start = i - i % self.CHUNK
        if start != self._start:
            part = self._frame.iloc[start:start + self.CHUNK]
            self._start, self._cols = start, {c: part[c].to_numpy(dtype=object) for c in self._present}
        j = i - start
        return SimpleNamespace(**self._blank, **{c: _none(v[j]) for c, v in self._cols.items()})

    def rows(self, start: int, stop: int) -> list[SimpleNamespace]:
        return [self._row(i) for i in range(start, stop)]


def _none(value):
    """Missing values of any flavour (NaN, NaT, pd.NA) as None."""
    try:
        return None if pd.isna(value) else value
    except (TypeError, ValueError):  # list-like values are not missing
        return value


def _customer_line(section: str, rows: list[SimpleNamespace], links: Links, stages: Mapping[str, Stage],
                   last_contact: Mapping[int, object] | None, limits: Limits) -> Line:
    """One customer's line. `rows` come ordered by `line_groups`: the head's invoices first
    (biggest first), then each folded group. The head's stage, count, amount and days all
    describe the head's invoices, and nothing else."""
    head = [r for r in rows if r.is_head]
    first = head[0]
    name = _clip(str(first.customer_name or f"customer {first.customer_id}"), 150)
    n = len(head)
    count = f"{n} invoice{'s' if n != 1 else ''}"
    amount = f"*{_amounts(_sum_by_currency(head))}*"
    parts = [f"*{escape(name)}*"]
    label = _stage_label(first.to_stage, stages)
    if first.kind == "resolved":
        parts += [", ".join(sorted({escape(r.reason) for r in head})), count, amount]
    elif first.kind == "in_payment":
        parts += ["payment on its way", count, amount]
    else:
        if first.kind == "hold":
            reasons = sorted({_hold_label(r) for r in head})
            parts.append(f"on hold at {label} ({', '.join(reasons)})")
        elif section == "action":
            parts.append(f"{label}: {escape(_todo(first, _stage_of(first.to_stage, stages)))}")
        else:
            parts.append(label)
        parts += [count, amount]
        oldest = max(head, key=lambda r: -10**9 if r.days is None else int(r.days))
        parts += _days_on(_int_or_none(oldest.days), _as_date(oldest.days_on))
    if last_contact is not None and first.kind not in ("resolved", "in_payment"):
        contact = _as_date(last_contact.get(int(first.customer_id)))
        parts.append(f"last contact {contact.isoformat()}" if contact else "no contact on record")
    groups = [_items(head, links, stages, limits.invoices_per_group)]
    rest = rows[n:]
    start = 0
    for i in range(1, len(rest) + 1):
        if i == len(rest) or rest[i].group_order != rest[start].group_order:
            group = rest[start:i]
            groups.append(f"_{_group_title(group, stages)}:_ "
                          + _items(group, links, stages, limits.invoices_per_group))
            start = i
    return Line(section, int(first.customer_id), name, " · ".join(parts), groups,
                sum(int(r.amt_company) for r in head))


# -- the summary at the top ---------------------------------------------------------------------
def _stage_totals(states: pd.DataFrame, stages: Sequence[Stage]) -> list[tuple[str, dict[str, int]]]:
    """Amount now per stage (company currency) of the changed invoices still owed and not on
    their way."""
    open_ = states[states["kind"].isin(["dunning", "hold"])]
    sums = (open_.assign(_cur=open_["ccur"].fillna(""))
            .groupby(["to_stage", "_cur"])["amt_company"].sum())
    by_stage: dict[str, dict[str, int]] = {}
    for (stage, cur), units in sums.items():
        by_stage.setdefault(stage, {})[cur] = int(units)
    known = [s.name for s in stages]
    names = {s.name: s for s in stages}
    order = known + sorted(set(by_stage) - set(known))
    return [(_stage_label(name, names), by_stage[name]) for name in order if name in by_stage]


def _company_totals(frame: pd.DataFrame) -> dict[str, int]:
    sums = frame.assign(_cur=frame["ccur"].fillna("")).groupby("_cur")["amt_company"].sum()
    return {cur: int(units) for cur, units in sums.items()}


# -- packing into blocks and messages -----------------------------------------------------------
def _line_pieces(line: Line, limit: int) -> list[str]:
    """The line as text pieces each within `limit`; a customer with very many groups
    continues in the next piece under its name."""
    whole = line.head + "\n" + "\n".join(line.groups)
    if len(whole) <= limit:
        return [whole]
    pieces, current = [], line.head
    cont = f"↳ *{escape(line.name)}* (continued)"
    for group in line.groups:
        group = _clip(group, limit - len(cont) - 1)
        if len(current) + 1 + len(group) <= limit:
            current += "\n" + group
            continue
        pieces.append(current)
        current = cont + "\n" + group
    pieces.append(current)
    return pieces


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=text))


class _Pager:
    """Blocks into messages as lines arrive: at most `blocks_per_message - 1` blocks (one is kept
    for the part footer) and `message_chars` characters each, a section cut by a message
    boundary repeats its title, and a section's title never ends a message. On the last message
    the cap allows, room is kept for the note that says what did not fit."""

    NOTE_CHARS = 600

    def __init__(self, limits: Limits, intro: list[tuple[object, int]]):
        self.limits = limits
        self.pages: list[list[tuple[object, int]]] = [list(intro)]
        self.full = False
        self.section: str | None = None
        self._heading: list[tuple[object, int]] = []  # divider + title, placed with the first text
        self._text = ""
        self._done_in_text: list[str] = []  # sections of lines whose last piece is in _text
        self.shown = {k: 0 for k in SECTION_ORDER}

    def _room(self) -> tuple[int, int]:
        blocks, chars = self.limits.blocks_per_message - 1, self.limits.message_chars - 200
        if len(self.pages) == self.limits.max_messages:
            blocks, chars = blocks - 1, chars - self.NOTE_CHARS
        return blocks, chars

    def _place(self, group: list[tuple[object, int]]) -> bool:
        page = self.pages[-1]
        if not page and isinstance(group[0][0], DividerBlock):
            group = group[1:]  # no divider at the top of a message
        max_blocks, max_chars = self._room()
        if (len(page) + len(group) <= max_blocks
                and sum(c for _b, c in page) + sum(c for _b, c in group) <= max_chars):
            page.extend(group)
            return True
        if len(self.pages) >= self.limits.max_messages:
            self.full = True
            return False
        if not isinstance(group[0][0], DividerBlock) and self.section is not None:
            title = f"{SECTION_TITLES[self.section]} (continued)"
            group = [(_section(title), len(title))] + group
        elif isinstance(group[0][0], DividerBlock):
            group = group[1:]
        self.pages.append(list(group))
        return True

    def _flush(self) -> bool:
        if not self._text:
            return True
        group = self._heading + [(_section(self._text), len(self._text))]
        if not self._place(group):
            return False
        self._heading = []
        for section in self._done_in_text:
            self.shown[section] += 1
        self._text, self._done_in_text = "", []
        return True

    def begin_section(self, section: str, count: int, *, continued: bool = False) -> bool:
        if not self._flush():
            return False
        self.section = section
        title = f"{SECTION_TITLES[section]} · {count} customer{'s' if count != 1 else ''}"
        if continued:
            title = f"{SECTION_TITLES[section]} (continued)"
        self._heading = [(DividerBlock(), 0), (_section(title), len(title))]
        return True

    def add_text(self, text: str) -> bool:
        """A note of its own (not a customer line) in the current section."""
        if not self._flush():
            return False
        self._text = text
        return self._flush()

    def add(self, line: Line) -> bool:
        """Add a customer line; False once the alert is full (the line is not shown in full)."""
        pieces = _line_pieces(line, self.limits.section_chars)
        for i, piece in enumerate(pieces):
            if self._text and len(self._text) + 2 + len(piece) <= self.limits.section_chars:
                self._text += "\n\n" + piece
            else:
                if not self._flush():
                    return False
                self._text = piece
            if i == len(pieces) - 1:
                self._done_in_text.append(line.section)
        return True

    def break_page(self) -> bool:
        """What follows starts a new message (a reply in the thread), if the cap allows one."""
        if not self._flush():
            return False
        if self.pages[-1] and len(self.pages) < self.limits.max_messages:
            self.pages.append([])
        return True

    def finish(self) -> bool:
        return self._flush()


def _truncation_note(omitted: dict[str, int], limits: Limits) -> tuple[object, int]:
    total = sum(omitted.values())
    parts = ", ".join(f"{SECTION_NAMES[s]}: {n}" for s, n in omitted.items() if n)
    text = (f":warning: *{total} more customer line{'s' if total != 1 else ''} not shown in full* "
            f"({parts}): this alert is capped at {limits.max_messages} messages "
            f"(SLACK_MAX_MESSAGES). Every change is in the `dunning_history` table.")
    return _section(text), len(text)


def _summary_intro(period: Period) -> str:
    if period.summary == FIRST_ALERT:
        why = "First alert since installation"
    else:
        days = (period.end - period.start).days + 1 if period.start else None
        why = f"First alert in {days} days" if days else "First alert after a long gap"
    return (f"{why}: a summary. The customers that need action now come first, biggest first;"
            " every other customer's line is in the thread.")


def render_digest(
    history: pd.DataFrame,
    period: Period,
    *,
    links: Links = Links(),
    stages: Sequence[Stage] | None = None,
    last_contact: Mapping[int, object] | None = None,
    limits: Limits = Limits(),
) -> list[AlertMessage]:
    """The messages of one alert. `history`: the `dunning_history` rows of the period as
    `alert.read_history` returns them (the `now_*` and `prior_*` columns are optional).
    `stages`: the policy's (`DunningPolicy.display_stages()`), the shipped policy's if None.
    `last_contact`: customer id -> date of the last contact, or None when not known at all
    (then the lines do not mention it). Lines are rendered only as far as the alert has room,
    so a huge first alert costs what fits, not what exists."""
    stages = default_stages() if stages is None else tuple(stages)
    title = f"Dunning changes {period.describe()}"
    if history.empty:
        text = f"No dunning stage changes {_period_phrase(period)}."
        return [AlertMessage(text, [_section(text).to_dict()])]

    states = invoice_states(history, stages, period.end)
    ordered, lines = line_groups(states)
    per_section = lines.groupby("line_section").size().to_dict()
    n_invoices = int(states["invoice_id"].nunique())
    n_customers = int(states["customer_id"].nunique())
    summary = (f"*{n_invoices}* invoice{'s' if n_invoices != 1 else ''} of "
               f"*{n_customers}* customer{'s' if n_customers != 1 else ''} changed stage")
    counts = [f"{SECTION_NAMES[s]}: {per_section[s]}" for s in SECTION_ORDER if per_section.get(s)]
    summary += ".\nCustomers per section: " + " · ".join(counts)
    if period.summary:
        summary = _summary_intro(period) + "\n" + summary
    if period.late_rows:
        summary += (f"\nIncludes {period.late_rows} change{'s' if period.late_rows != 1 else ''} "
                    f"dated before {period.start.isoformat() if period.start else period.end.isoformat()}"
                    f" that {'was' if period.late_rows == 1 else 'were'} recorded after the previous alert.")
    on_way = states[states["kind"] == "in_payment"]
    if not on_way.empty:
        n = len(on_way)
        summary += (f"\n:incoming_envelope: *{n}* invoice{'s' if n != 1 else ''} with payment on its way,"
                    f" {_amounts(_company_totals(on_way))}: not dunned, each shown on its customer's line.")
    intro: list[tuple[object, int]] = [
        (HeaderBlock(text=PlainTextObject(text=_clip(title, limits.header_chars))), len(title)),
        (_section(summary), len(summary)),
    ]
    totals = _stage_totals(states, stages)
    for start in range(0, len(totals), 10):  # at most 10 fields per section
        fields = [MarkdownTextObject(text=f"*{label}*\n{_amounts(units)}")
                  for label, units in totals[start:start + 10]]
        intro.append((SectionBlock(fields=fields), sum(len(f.text) for f in fields)))
    owed = states[states["kind"].isin(["dunning", "hold"])]
    if not owed.empty:
        on = max(_as_date(d) for d in owed["days_on"].dropna().unique())
        n = len(owed)
        note = (f"Owed on {on.isoformat()} by the {n} changed invoice{'s' if n != 1 else ''} still open,"
                f" in company currency: {_amounts(_company_totals(owed))} (per stage above)."
                " Lines show each invoice's own currency.")
        intro.append((ContextBlock(elements=[MarkdownTextObject(text=note)]), len(note)))

    by_name = {s.name: s for s in stages}
    records = _Records(ordered)
    pager = _Pager(limits, intro)

    def line_of(section, start, stop):
        return _customer_line(section, records.rows(start, stop), links, by_name, last_contact, limits)

    skip = 0  # summary: action lines already shown in the first message
    if period.summary:
        action = lines[lines["line_section"] == "action"]
        top = action.head(limits.summary_lines)
        if action.empty:
            pager.add_text("No customer needs action now.")
        elif pager.begin_section("action", len(action)):
            for start, stop in zip(top["start"], top["stop"]):
                if not pager.add(line_of("action", start, stop)):
                    break
            rest = action.iloc[len(top):]
            if not rest.empty and not pager.full:
                units = _company_totals(ordered.iloc[np.concatenate(
                    [np.arange(a, b) for a, b in zip(rest["start"], rest["stop"])])].query("is_head"))
                pager.add_text(f"…and {len(rest)} more customer{'s' if len(rest) != 1 else ''} that"
                               f" need{'s' if len(rest) == 1 else ''} action, {_amounts(units)} at their highest stage: in the thread.")
        skip = len(top)
        if not pager.full:
            pager.break_page()
    for section in SECTION_ORDER:
        if pager.full:
            break
        rows_of = lines[lines["line_section"] == section]
        if section == "action":
            rows_of = rows_of.iloc[skip:]
        if rows_of.empty:
            continue
        if section == "in_payment" and not pager.break_page():
            break
        if not pager.begin_section(section, len(rows_of), continued=section == "action" and skip > 0):
            break
        for start, stop in zip(rows_of["start"], rows_of["stop"]):
            if not pager.add(line_of(section, start, stop)):
                break
    pager.finish()
    pages = [p for p in pager.pages if p]
    if pager.full:
        omitted = {s: per_section.get(s, 0) - pager.shown[s] for s in SECTION_ORDER}
        pages[-1].append(_truncation_note(omitted, limits))

    fallback = (f"{title}: {n_invoices} invoices of {n_customers} customers changed stage; "
                + "; ".join(counts))
    n = len(pages)
    messages = []
    for i, page in enumerate(pages, start=1):
        blocks = [b for b, _chars in page]
        if n > 1:
            part = f"Part {i} of {n}" + (" · continued in the thread" if i == 1 else "")
            blocks.append(ContextBlock(elements=[MarkdownTextObject(text=part)]))
        text = fallback if i == 1 else f"{title} (part {i} of {n})"
        messages.append(AlertMessage(text, [b.to_dict() for b in blocks]))
    return messages


def _period_phrase(period: Period) -> str:
    if period.start is None:
        return f"up to {period.end.isoformat()}"
    if period.start == period.end:
        return f"on {period.end.isoformat()}"
    return f"from {period.start.isoformat()} to {period.end.isoformat()}"


# -- a markdown view for the Dagster UI ---------------------------------------------------------
def _mrkdwn_to_markdown(text: str) -> str:
    text = re.sub(r"<([^|>]+)\|([^>]+)>", r"[\2](\1)", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"**\1**", text)


def to_markdown(messages: Sequence[AlertMessage | dict]) -> str:
    """The messages as Markdown (run metadata shows what was, or would be, posted)."""
    out: list[str] = []
    for i, msg in enumerate(messages, start=1):
        blocks = msg.blocks if isinstance(msg, AlertMessage) else msg["blocks"]
        if len(messages) > 1:
            out.append(f"#### Message {i} of {len(messages)}")
        for block in blocks:
            kind = block.get("type")
            if kind == "header":
                out.append(f"### {block['text']['text']}")
            elif kind == "divider":
                out.append("---")
            elif kind == "context":
                out.append(" ".join(f"_{_mrkdwn_to_markdown(e.get('text', ''))}_" for e in block["elements"]))
            elif kind == "section":
                if block.get("text"):
                    out.append(_mrkdwn_to_markdown(block["text"]["text"]).replace("\n", "  \n"))
                for f in block.get("fields") or []:
                    out.append("- " + _mrkdwn_to_markdown(f["text"]).replace("\n", ": ", 1).replace("\n", ", "))
        out.append("")
    return "\n\n".join(out).strip() + "\n"
