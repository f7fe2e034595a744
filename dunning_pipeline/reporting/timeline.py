"""Each customer's history in one place: every Zendesk message and every dunning event, in order.

Messages are the tickets' comments (in Zendesk the first comment is the ticket's description),
on tickets matched to the customer by `customer_communications`: inbound (the customer's side)
or outbound (an agent), public or internal notes, with author, ticket, subject, text and the
customer's invoice numbers the message names. Dunning events come from `dunning_history`:
stage entered, hold, promise, release, closure. A day's dunning events come before its
messages (the history is recorded by the night run, before anyone writes that day).
Nothing after the as-of day is shown. Pure pandas (and Jinja2 for the per-customer view).

Each customer's events and view get a fingerprint (`fingerprints`): of its rows but the as-of
day, its name and the view's template. A night whose fingerprint of a customer equals the last
build's carries that customer's rows and view over instead of writing them again.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from zoneinfo import ZoneInfo

import jinja2
import jinja2.meta

from dunning_pipeline import lazy, money
from dunning_pipeline.dunning import invoice_numbers
from dunning_pipeline.dunning.communications import AGENT_ROLES, local_day
from dunning_pipeline.dunning.policy import CLOSED, SHIPPED_TEMPLATES_DIR

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

COLUMNS = [
    "customer_id", "seq", "day", "at", "kind", "event", "direction", "visibility", "channel", "author_id",
    "author_name", "author_role", "ticket_id", "ticket_status", "subject", "text", "comment_id",
    "invoice_numbers", "invoice_id", "invoice_number", "from_stage", "to_stage", "reason", "hold_reason",
    "hold_until", "amount_residual", "currency", "as_of_date",
]
# What the timeline reads of zendesk_comments.
COMMENT_COLUMNS = ("id", "ticket_id", "author_id", "public", "body", "via_channel", "created_at")
MESSAGE, DUNNING = "message", "dunning"
INBOUND, OUTBOUND, INTERNAL = "inbound", "outbound", "internal_note"
VIEW_TEMPLATE = "timeline.html.j2"


def ticket_customers(communications: pd.DataFrame) -> pd.Series:
    """ticket_id -> customer_id of the tickets matched to a customer."""
    matched = communications[communications["customer_id"].notna()].drop_duplicates("ticket_id")
    return pd.Series(matched["customer_id"].astype("int64").to_numpy(),
                     index=matched["ticket_id"].astype("int64").to_numpy())


def _messages(comments: pd.DataFrame, tickets: pd.DataFrame, users: pd.DataFrame, owner: pd.Series,
              invoices: pd.DataFrame, pattern: str, as_of: date, tz: ZoneInfo) -> pd.DataFrame:
    comments = comments[comments["ticket_id"].astype("int64").isin(owner.index)].copy()
    comments["ticket_id"] = comments["ticket_id"].astype("int64")
    comments["day"] = local_day(comments["created_at"], tz)
    comments = comments[comments["day"] <= pd.Timestamp(as_of)]
    t = tickets.set_index(tickets["id"].astype("int64"))
    u = users.set_index(users["id"].astype("int64"))
    author = comments["author_id"].astype("Int64")
    role = author.map(u["role"])
    requester = comments["ticket_id"].map(t["requester_id"]).astype("Int64")
    # An author we do not know is ours unless it is the ticket's requester (as communications does).
    agent = role.isin(AGENT_ROLES) | (role.isna() & (author != requester).fillna(True))
    public = comments["public"].astype("boolean").fillna(True).to_numpy(dtype=bool)
    event = np.where(~public, INTERNAL, np.where(agent.to_numpy(dtype=bool), OUTBOUND, INBOUND))
    out = pd.DataFrame({
        "customer_id": comments["ticket_id"].map(owner).to_numpy(dtype=np.int64),
        "day": comments["day"].to_numpy(), "at": pd.to_datetime(comments["created_at"]).to_numpy(),
        "kind": MESSAGE, "event": event,
        "direction": np.where(event == INBOUND, INBOUND, OUTBOUND),
        "visibility": np.where(public, "public", "internal"),
        "channel": comments["via_channel"].to_numpy(dtype=object) if "via_channel" in comments else None,
        "author_id": author.to_numpy(), "author_name": author.map(u["name"]).to_numpy(dtype=object),
        "author_role": role.to_numpy(dtype=object),
        "ticket_id": comments["ticket_id"].to_numpy(), "ticket_status": comments["ticket_id"].map(t["status"]).to_numpy(),
        "subject": comments["ticket_id"].map(t["subject"]).to_numpy(dtype=object),
        "text": comments["body"].fillna("").astype("str").to_numpy(dtype=object),
        "comment_id": comments["id"].astype("int64").to_numpy(),
    }, index=comments.index)
    out["invoice_numbers"] = _mentioned_numbers(out, invoices, pattern)
    return out.reset_index(drop=True)


def _mentioned_numbers(messages: pd.DataFrame, invoices: pd.DataFrame, pattern: str) -> pd.Series:
    """JSON list of the customer's own invoice numbers each message names, in any of the forms
    people write them (`invoice_numbers`: INV/2025/00054, 2025/00054, invoice 54), once each."""
    invoices = invoices[invoices["customer_id"].isin(messages["customer_id"])]  # only a message's customer counts
    keys = invoice_numbers.invoice_keys(pd.DataFrame({
        "id": invoices["invoice_id"], "name": invoices["invoice_number"],
        "company_id": invoices["company_id"] if "company_id" in invoices else pd.NA,
        "customer_id": invoices["customer_id"]}))
    texts = messages["text"].astype("str").reset_index(drop=True)
    found = invoice_numbers.match_numbers(invoice_numbers.find_candidates(texts, pattern),
                                          messages["customer_id"].reset_index(drop=True), keys)
    found = found.drop_duplicates(["text_row", "invoice_id"]).sort_values(["text_row"], kind="stable")
    lists = found.groupby("text_row", sort=False)["invoice_number"].agg(list)
    out = np.full(len(messages), json.dumps([]), dtype=object)
    out[lists.index.to_numpy(dtype=np.int64)] = [json.dumps(numbers) for numbers in lists.tolist()]
    return pd.Series(out, index=messages.index, dtype=object)


def dunning_event(history: pd.DataFrame) -> np.ndarray:
    """The timeline's name of each history row: closure, release, promise, hold or stage_entered."""
    reason = history["reason"].astype(object)
    hold = history["hold_reason"].astype(object)
    entered_on_hold = history["from_stage"].isna() & hold.notna()
    return np.select(
        [(history["to_stage"] == CLOSED).to_numpy(), (reason == "released").to_numpy(),
         (((reason == "hold") | entered_on_hold) & (hold == "promise")).to_numpy(),
         ((reason == "hold") | entered_on_hold).to_numpy()],
        ["closure", "release", "promise", "hold"], default="stage_entered")


def _dunning(history: pd.DataFrame, as_of: date) -> pd.DataFrame:
    h = history[history["as_of_date"] <= pd.Timestamp(as_of)]
    event = dunning_event(h)
    from_stage = h["from_stage"].astype(object).where(h["from_stage"].notna(), "")
    text = (h["invoice_number"].astype(object).fillna("").astype(str) + ": "
            + np.where(from_stage == "", "", from_stage + " -> ") + h["to_stage"].astype(str)
            + " (" + h["reason"].astype(str) + np.where(h["hold_reason"].notna(),
                                                         ", " + h["hold_reason"].astype(object).fillna("").astype(str),
                                                         "") + ")")
    return pd.DataFrame({
        "customer_id": h["customer_id"].astype("int64").to_numpy(), "day": h["as_of_date"].to_numpy(),
        "at": pd.NaT, "kind": DUNNING, "event": event, "text": text.to_numpy(dtype=object),
        "invoice_id": h["invoice_id"].astype("int64").to_numpy(), "invoice_number": h["invoice_number"].to_numpy(),
        "from_stage": h["from_stage"].to_numpy(dtype=object), "to_stage": h["to_stage"].to_numpy(dtype=object),
        "reason": h["reason"].to_numpy(dtype=object), "hold_reason": h["hold_reason"].to_numpy(dtype=object),
        "hold_until": (h["hold_until"] if "hold_until" in h else pd.Series(pd.NaT, index=h.index)).to_numpy(),
        "ticket_id": h["ticket_id"].astype("Int64").to_numpy(),
        "amount_residual": h["amount_residual"].astype("Int64").to_numpy(),
        "currency": h["currency"].to_numpy(dtype=object),
        "_order": h["id"].to_numpy() if "id" in h else np.arange(len(h)),
    })


def build_timeline(comments: pd.DataFrame, tickets: pd.DataFrame, users: pd.DataFrame,
                   communications: pd.DataFrame, history: pd.DataFrame, invoices: pd.DataFrame,
                   pattern: str, as_of: date, tz: ZoneInfo) -> pd.DataFrame:
    """One row per event per customer, in order (`seq` from 1); see the module doc.

    `invoices`: invoice_id, invoice_number, customer_id (commercial partner), company_id of posted
    invoices; `pattern` is `invoice_numbers.text_pattern` of the policy's number pattern and words."""
    owner = ticket_customers(communications)
    messages = _messages(comments, tickets, users, owner, invoices, pattern, as_of, tz)
    messages["_order"] = messages["comment_id"]
    events = _dunning(history, as_of)
    both = pd.concat([events.assign(_kind=0), messages.assign(_kind=1)], ignore_index=True)
    both = both.sort_values(["customer_id", "day", "_kind", "at", "_order"], kind="stable", na_position="first")
    both["seq"] = both.groupby("customer_id").cumcount() + 1
    both["as_of_date"] = pd.Timestamp(as_of)
    out = both.reindex(columns=COLUMNS)
    for col in ("ticket_id", "comment_id", "invoice_id", "author_id", "amount_residual"):
        out[col] = out[col].astype("Int64")
    out["customer_id"] = out["customer_id"].astype("int64")
    out["day"] = pd.to_datetime(out["day"]).astype("datetime64[s]")
    out["at"] = pd.to_datetime(out["at"]).astype("datetime64[us]")
    out["hold_until"] = pd.to_datetime(out["hold_until"]).astype("datetime64[s]")
    return out.reset_index(drop=True)


def template_environment(override_dir=None, *, autoescape: bool) -> jinja2.Environment:
    """Templates from the policy's override folder first, then the shipped ones."""
    loaders = [jinja2.FileSystemLoader(str(override_dir))] if override_dir is not None else []
    loaders.append(jinja2.FileSystemLoader(str(SHIPPED_TEMPLATES_DIR)))
    return jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=autoescape,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def _runs(customers: np.ndarray) -> tuple[list[int], list[int]]:
    """Start and end (exclusive) of each customer's rows in rows ordered by customer."""
    starts = np.flatnonzero(np.r_[True, customers[1:] != customers[:-1]]) if len(customers) else np.array([], int)
    return starts.tolist(), np.r_[starts[1:], len(customers)][:len(starts)].tolist()


def _view_columns(timeline: pd.DataFrame) -> dict[str, list]:
    """The template's item fields, column by column (one pass, not a pandas row lookup per
    event); `render_views` zips them into items one customer at a time, so the items of every
    event never exist at once (at 1M moves, millions of dicts)."""
    def text_or_empty(values) -> list:
        return [v if isinstance(v, str) else "" for v in values]

    amounts = [("" if pd.isna(a) else money.format_amount(int(a), c if isinstance(c, str) else None))
               for a, c in zip(timeline["amount_residual"].tolist(), timeline["currency"].tolist(), strict=True)]
    at = timeline["at"]
    return {
        "kind": timeline["kind"].tolist(), "event": timeline["event"].tolist(),
        "day": timeline["day"].dt.strftime("%Y-%m-%d").tolist(),
        "at": at.dt.strftime("%Y-%m-%d %H:%M UTC").where(at.notna(), "").tolist(),
        "visibility": timeline["visibility"].tolist(), "channel": text_or_empty(timeline["channel"].tolist()),
        "author": text_or_empty(timeline["author_name"].tolist()),
        "ticket_id": [None if pd.isna(t) else int(t) for t in timeline["ticket_id"].tolist()],
        "subject": text_or_empty(timeline["subject"].tolist()),
        "text": [t or "" for t in timeline["text"].tolist()],
        "invoices": [json.loads(n) if isinstance(n, str) else [] for n in timeline["invoice_numbers"].tolist()],
        "invoice_number": text_or_empty(timeline["invoice_number"].tolist()),
        "amount": amounts,
    }


def render_views(timeline: pd.DataFrame, names: pd.Series, as_of: date, override_dir=None) -> pd.DataFrame:
    """Per customer, the timeline as an HTML fragment for the workbench (autoescaped: the texts
    are the customers' own words). `names`: customer_id -> name."""
    env = template_environment(override_dir, autoescape=True)
    template = env.get_template(VIEW_TEMPLATE)
    ordered = timeline.iloc[np.argsort(timeline["customer_id"].to_numpy(), kind="stable")]
    columns = _view_columns(ordered)
    fields, values = list(columns), list(columns.values())
    customers = ordered["customer_id"].to_numpy()
    starts, ends = _runs(customers)
    is_message = (ordered["kind"] == MESSAGE).to_numpy()
    last_message = ordered.loc[is_message].groupby("customer_id")["at"].max()
    rows = []
    for begin, end in zip(starts, ends, strict=True):
        customer_id = int(customers[begin])
        name = names.get(customer_id)
        messages = int(is_message[begin:end].sum())
        rows.append({
            "customer_id": customer_id, "customer_name": name if isinstance(name, str) else None,
            "events": end - begin, "messages": messages,
            "last_message_at": last_message.get(customer_id, pd.NaT) if messages else pd.NaT,
            "html": template.render(customer_id=customer_id, customer_name=name or "", as_of=as_of.isoformat(),
                                    items=[dict(zip(fields, item, strict=True))
                                           for item in zip(*(v[begin:end] for v in values), strict=True)]),
            "as_of_date": pd.Timestamp(as_of),
        })
    out = pd.DataFrame(rows, columns=["customer_id", "customer_name", "events", "messages", "last_message_at",
                                      "html", "as_of_date"])
    out["last_message_at"] = pd.to_datetime(out["last_message_at"]).astype("datetime64[us]")
    out["as_of_date"] = pd.to_datetime(out["as_of_date"]).astype("datetime64[s]")
    return out


def view_template_key(as_of: date, override_dir=None) -> str:
    """What a view depends on besides its customer's events and name: the template's source, and
    the as-of day when the template shows it (or includes another template, which might): then
    every view changes with the day."""
    env = template_environment(override_dir, autoescape=True)
    source, _, _ = env.loader.get_source(env, VIEW_TEMPLATE)
    ast = env.parse(source)
    uses_day = ("as_of" in jinja2.meta.find_undeclared_variables(ast)
                or next(iter(jinja2.meta.find_referenced_templates(ast)), False) is not False)
    return hashlib.sha256((source + ("\x1f" + as_of.isoformat() if uses_day else "")).encode()).hexdigest()


def fingerprints(timeline: pd.DataFrame, names: pd.Series, template_key: str) -> pd.Series:
    """customer_id -> sha256 of the customer's timeline rows (every column but the as-of day, in
    `seq` order), its name and `template_key` (`view_template_key`): equal fingerprints, equal
    rows and view."""
    rows = timeline.sort_values(["customer_id", "seq"], kind="stable")
    row_hash = pd.util.hash_pandas_object(rows[[c for c in COLUMNS if c != "as_of_date"]], index=False).to_numpy()
    customers = rows["customer_id"].to_numpy()
    starts, ends = _runs(customers)
    out = {}
    for begin, end in zip(starts, ends, strict=True):
        customer_id = int(customers[begin])
        name = names.get(customer_id)
        digest = hashlib.sha256(f"{template_key}\x1f{name!r}\x1f".encode())
        digest.update(row_hash[begin:end].tobytes())
        out[customer_id] = digest.hexdigest()
    return pd.Series(out, dtype=object)
