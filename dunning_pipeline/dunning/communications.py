"""Zendesk tickets matched to customers and invoices: contacts, disputes, payment claims, promises.

Who the ticket is from. It belongs to a customer (an Odoo commercial partner) by the first of:
1. its requester's email is the email of the customer or one of its contacts (`requester_email`);
2. the original sender of the mail (`via.source.from.address`, also of a mail an agent forwarded
   and so requested himself) is (`sender_email`);
3. the users in CC (`email_cc_ids`), then the collaborators (`collaborator_ids`), have emails of
   exactly one customer (`cc`, `collaborator`; an outside bookkeeper writes with the customer in CC);
4. its Zendesk organization is that of users already matched to exactly one customer (`organization`);
5. the email domain of the requester, the sender or a CC (or a parent domain: a subsidiary's
   `logistics.acme.example` is `acme.example`) is used by exactly one customer and is not a
   public mail provider (`domain`, if enabled in the policy);
6. it is the target of merged tickets of exactly one customer (`merged_from`).
A ticket Zendesk merged into another (closed, tag `closed_by_merge`, the note "merged into
request #N") carries its texts, and so the invoices it names, over to the target.

What they meant. Invoice numbers are found in the forms people write them (see
`invoice_numbers`) and matched to the ticket's customer's own invoices. Only the customer's own
words count for a hold: the mail they sent (the ticket's subject and description when the
requester or the original sender is not one of ours) and their public comments. Our agents'
replies and internal notes name invoices all the time (every reminder does) and never hold one.
Ours are users with role agent or admin, or an email domain of such users (an agent who left
and was downgraded). In the customer's words:
- a payment word ("we have paid", remittance advice) makes a `payment_claimed` hold for the
  policy's `payment_claim_days` from the day of the latest claim, whatever the ticket's status;
- otherwise, on an open ticket, a dispute word or simply naming the invoice (policy
  `customer_mention_hold`) makes a `dispute`, from the first such text;
- a dispute or payment word in a text that names none of their invoices applies to the invoices
  the ticket names (e.g. their "we paid it last week" under our reminder), and so does a dispute
  tag or dispute field on an open ticket; when the ticket names none, a payment claim, a tag or a
  field holds all of the customer's invoices (dispute words alone do not: support tickets about
  products use them too).

One output row per (ticket, invoice named in it, by anyone); a ticket naming none of its
customer's invoices has one row with no invoice. `hold_kind` is dispute, payment_claimed or
null; `dispute_scope` says whether the hold is for the invoice or the whole customer.

Timestamps are naive UTC; the day of an event is taken in the business time zone passed in.
Nothing after the as-of day is looked at, so a past day can be replayed. Pure pandas.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import date
from zoneinfo import ZoneInfo

from dunning_pipeline import lazy
from dunning_pipeline.dunning import invoice_numbers
from dunning_pipeline.dunning.policy import DunningPolicy
from dunning_pipeline.dunning.receivables import commercial_partner_map, quarantined_ids, tag_lists

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

COLUMNS = [
    "ticket_id", "invoice_id", "invoice_number", "customer_id", "match_method", "status", "is_open",
    "is_dispute", "dispute_scope", "subject", "requester_id", "requester_email", "tags", "mentioned_at",
    "promise_until", "ticket_created_at", "ticket_updated_at", "last_inbound_at", "last_outbound_at",
    "customer_last_inbound_at", "customer_last_outbound_at", "as_of_date", "hold_kind", "hold_until",
]
AGENT_ROLES = ("agent", "admin")
DISPUTE, PAYMENT_CLAIMED = "dispute", "payment_claimed"
HOLD_KINDS = (DISPUTE, PAYMENT_CLAIMED)
MERGED_TAG = "closed_by_merge"
# Zendesk's merge notes: on the source ("... closed and merged into request #123 ...") and on
# the target ("Request #122 "subject" was closed and merged into this request.").
_MERGED_INTO = r"merged into request #(?P<target>\d+)"
_MERGED_FROM = r"request #(?P<source>\d+)\b[^\n]*?was closed and merged into this request"
_MAX_MERGE_DEPTH = 20
QUARANTINE_ASSETS = ("zendesk_tickets", "zendesk_comments", "zendesk_users")
EXCLUSION_COLUMNS = ["asset", "record_id", "ticket_id", "check_name", "reason"]


def local_day(ts: pd.Series, tz: ZoneInfo) -> pd.Series:
    """Naive UTC timestamps -> the calendar day in `tz`, as datetime64 at midnight."""
    t = pd.to_datetime(ts)
    return t.dt.tz_localize("UTC").dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()


def _norm_email(s: pd.Series) -> pd.Series:
    """Addresses stripped and case-folded (object dtype, None where missing)."""
    text = s.astype(object).where(s.notna(), None)
    known = text.notna().to_numpy(dtype=bool)
    values = np.full(len(s), None, dtype=object)
    values[known] = text[known].astype("str").str.strip().str.casefold().to_numpy(dtype=object)
    values[known & (values == "")] = None
    return pd.Series(values, index=s.index, dtype=object)


def _domain(emails: pd.Series) -> pd.Series:
    """The part after the last '@' of normalized addresses (null without one)."""
    text = emails.astype(object).where(emails.notna(), None)
    known = (text.notna() & text.astype("str").str.contains("@", regex=False)).to_numpy(dtype=bool)
    values = np.full(len(emails), None, dtype=object)
    values[known] = text[known].astype("str").str.rsplit("@", n=1).str[-1].to_numpy(dtype=object)
    return pd.Series(values, index=emails.index, dtype=object)


def _unique_map(keys: pd.Series, values: pd.Series) -> pd.Series:
    """key -> value for keys that map to exactly one distinct value (ambiguous keys dropped)."""
    frame = pd.DataFrame({"k": keys.to_numpy(), "v": values.to_numpy()}).dropna().drop_duplicates()
    counts = frame.groupby("k")["v"].transform("size")
    frame = frame[counts == 1]
    return pd.Series(frame["v"].to_numpy(), index=frame["k"].to_numpy())


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column that newer extracts have and older warehouses may lack (null where absent)."""
    col = frame.get(name)
    return col if col is not None else pd.Series(None, index=frame.index, dtype=object)


def id_lists(values: pd.Series) -> pd.Series:
    """JSON lists of user ids (or lists) -> lists of ints; parsed once per distinct text.

    A bare id, as JSON text or as a number, is a list of that one id."""
    parsed: dict[str, list[int]] = {}

    def ints(value) -> list[int]:
        items = value if isinstance(value, (list, tuple, np.ndarray)) else [value]
        return [int(v) for v in items if isinstance(v, (int, np.integer)) or (isinstance(v, str) and v.isdigit())]

    for text in values[values.map(lambda v: isinstance(v, str))].unique():
        try:
            parsed[text] = ints(json.loads(text))
        except (TypeError, ValueError):
            parsed[text] = []
    return values.map(lambda v: parsed.get(v, []) if isinstance(v, str) else ints(v))


def _exploded_ids(tickets: pd.DataFrame, column: str) -> pd.Series:
    """One row per (ticket row, user id) of an id-list column, indexed by the ticket row."""
    return id_lists(_column(tickets, column)).explode().dropna().astype("int64")


def _keyword_pattern(words: Sequence[str]) -> str | None:
    """Whole words or phrases, any run of whitespace inside a phrase (None: no words)."""
    if not words:
        return None
    alts = sorted({r"\s+".join(re.escape(part) for part in w.split()) for w in words}, key=len, reverse=True)
    return r"(?<!\w)(?:" + "|".join(alts) + r")(?!\w)"


# -- whose side a user is on -------------------------------------------------------------------
def _agent_domains(users: pd.DataFrame, public: set[str]) -> set[str]:
    """Email domains of our agents and admins (public mail providers aside)."""
    staff = users[users["role"].isin(AGENT_ROLES)]
    return set(_domain(_norm_email(staff["email"])).dropna()) - public


def our_users(users: pd.DataFrame, policy: DunningPolicy) -> pd.Series:
    """user id -> True for our side: role agent or admin, or an email at our agents' domains (a
    former agent, deleted or downgraded to end-user, still wrote our reminders)."""
    public = {d.casefold() for d in policy.communications.public_email_domains}
    ours = users["role"].isin(AGENT_ROLES) | _domain(_norm_email(users["email"])).isin(_agent_domains(users, public))
    return pd.Series(ours.to_numpy(dtype=bool), index=users["id"].astype("int64").to_numpy())


# -- who the ticket is from --------------------------------------------------------------------
def _domain_customers(emails: pd.Series, by_domain: pd.Series, skip: set[str]) -> pd.Series:
    """Customer of each address by its domain or a parent domain (never the bare top level)."""
    domains = _domain(emails)
    distinct = pd.Series(domains.dropna().unique(), dtype=object)  # few distinct domains: work on those
    dom = distinct.copy()
    found = pd.Series(pd.NA, index=distinct.index, dtype="Int64")
    for _ in range(6):  # subdomain levels: a.b.c.acme.example at most
        left = found.isna() & dom.notna() & dom.astype("str").str.contains(".", regex=False)
        if not left.any():
            break
        found[left] = dom[left].where(~dom[left].isin(skip)).map(by_domain).astype("Int64")
        dom = dom.where(~left, dom.astype("str").str.split(".", n=1).str[-1])
    by_distinct = pd.Series(found.to_numpy(), index=distinct.to_numpy())
    return domains.map(by_distinct).astype("Int64")


def _list_customers(tickets: pd.DataFrame, column: str, user_email: pd.Series, by_email: pd.Series) -> pd.Series:
    """The one customer whose emails the users of an id-list column (CC, collaborators) have."""
    ids = _exploded_ids(tickets, column)
    cust = _norm_email(ids.map(user_email)).map(by_email).dropna()
    one = cust.groupby(level=0).nunique() == 1
    first = cust.groupby(level=0).first()[one]
    return first.reindex(tickets.index).astype("Int64")


def merge_targets(tickets: pd.DataFrame, comments: pd.DataFrame) -> pd.Series:
    """Merged source ticket id -> the ticket it ended in (chains followed), for tickets of the
    frame; read from Zendesk's merge notes (the source must carry the tag `closed_by_merge`)."""
    if comments.empty:
        return pd.Series(dtype="int64")
    body = comments["body"].fillna("").astype("str")
    ticket = comments["ticket_id"].astype("int64")
    merged_src = tickets.loc[tag_lists(tickets["tags"]).map(lambda t: MERGED_TAG in t).to_numpy(dtype=bool), "id"]
    into = body.str.extract(_MERGED_INTO, flags=re.IGNORECASE)["target"]
    frm = body.str.extract(_MERGED_FROM, flags=re.IGNORECASE)["source"]
    a = pd.DataFrame({"source": ticket, "target": pd.to_numeric(into)})[into.notna() & ticket.isin(merged_src)]
    b = pd.DataFrame({"source": pd.to_numeric(frm), "target": ticket})[frm.notna()]
    links = pd.concat([a, b]).dropna().astype("int64")
    links = links[(links["source"] != links["target"]) & links["source"].isin(tickets["id"])
                  & links["target"].isin(tickets["id"])].drop_duplicates("source")
    step = pd.Series(links["target"].to_numpy(), index=links["source"].to_numpy())
    final = step.copy()
    for _ in range(_MAX_MERGE_DEPTH):  # A -> B -> C: A ends in C
        nxt = final.map(step).fillna(final).astype("int64")
        if nxt.equals(final):
            break
        final = nxt
    return final[final.index != final.to_numpy()]


def match_customers(tickets: pd.DataFrame, users: pd.DataFrame, customers: pd.DataFrame,
                    policy: DunningPolicy, merged: pd.Series | None = None) -> pd.DataFrame:
    """customer_id and match_method per ticket (index aligned with `tickets`); see module doc.
    `merged`: merged source ticket id -> target ticket id (see `merge_targets`)."""
    cp_of = commercial_partner_map(customers)
    partner_email = _norm_email(customers["email"])
    by_email = _unique_map(partner_email, customers["id"].astype("int64").map(cp_of))

    user_email = users.set_index(users["id"].astype("int64"))["email"]
    requester_email = _norm_email(tickets["requester_id"].astype("Int64").map(user_email))
    sender_email = _norm_email(_column(tickets, "from_address"))

    customer = pd.Series(pd.NA, index=tickets.index, dtype="Int64")
    method = pd.Series(None, index=tickets.index, dtype=object)

    def take(name: str, found: pd.Series) -> None:
        nonlocal customer
        found = found.astype("Int64")
        hit = customer.isna() & found.notna()
        customer = customer.mask(hit, found)
        method[hit.to_numpy(dtype=bool)] = name

    take("requester_email", requester_email.map(by_email))
    take("sender_email", sender_email.map(by_email))
    take("cc", _list_customers(tickets, "email_cc_ids", user_email, by_email))
    take("collaborator", _list_customers(tickets, "collaborator_ids", user_email, by_email))

    # Organizations: the one customer that the organization's email-matched users belong to.
    users_cp = _norm_email(users["email"]).map(by_email)
    org_map = _unique_map(users["organization_id"].astype("Int64"), users_cp.astype("Int64"))
    org = tickets["organization_id"].astype("Int64")
    user_org = users.set_index(users["id"].astype("int64"))["organization_id"]
    org = org.fillna(tickets["requester_id"].astype("Int64").map(user_org).astype("Int64"))
    take("organization", org.map(org_map))

    if policy.communications.match_by_domain:
        public = {d.casefold() for d in policy.communications.public_email_domains}
        skip = public | _agent_domains(users, public)
        pdomain = _domain(partner_email)
        pdomain = pdomain.where(~pdomain.isin(skip))
        by_domain = _unique_map(pdomain, customers["id"].astype("int64").map(cp_of))
        found = _domain_customers(requester_email, by_domain, skip)
        found = found.fillna(_domain_customers(sender_email, by_domain, skip))
        cc = _exploded_ids(tickets, "email_cc_ids")
        cc_cust = _domain_customers(_norm_email(cc.map(user_email)), by_domain, skip).dropna()
        one = cc_cust.groupby(level=0).nunique() == 1
        found = found.fillna(cc_cust.groupby(level=0).first()[one].reindex(tickets.index).astype("Int64"))
        take("domain", found)

    if merged is not None and len(merged):
        # A target nobody else identifies is the customer of the tickets merged into it.
        src = pd.DataFrame({"target": merged.to_numpy(),
                            "customer": pd.Series(merged.index).map(
                                pd.Series(customer.to_numpy(), index=tickets["id"].to_numpy())).to_numpy()})
        by_target = _unique_map(src["target"], src["customer"].astype("Int64"))
        take("merged_from", tickets["id"].map(by_target))

    return pd.DataFrame({"customer_id": customer.astype("Int64"),
                         "match_method": method.fillna("unmatched"),
                         "requester_email": requester_email.fillna(sender_email)}, index=tickets.index)


# -- what they meant ---------------------------------------------------------------------------
def opened_by_ours(ticket_ids: pd.Series, comments: pd.DataFrame, ours: pd.Series) -> np.ndarray:
    """Per ticket: its first comment (in Zendesk, the description) was written by one of ours
    (`ours`: user id -> bool), as when an agent or the workbench opens a ticket for the customer
    as requester to send a reminder. Such a ticket is our outbound message, not the customer's."""
    if not len(comments):
        return np.zeros(len(ticket_ids), dtype=bool)
    order = ["ticket_id", "at", "id"] if "id" in comments else ["ticket_id", "at"]  # ids grow with time
    first = (comments.assign(ticket_id=comments["ticket_id"].astype("int64"), at=pd.to_datetime(comments["created_at"]))
             .sort_values(order, kind="stable").drop_duplicates("ticket_id"))
    author_ours = first["author_id"].astype("Int64").map(ours).astype("boolean").fillna(False)
    by_ticket = pd.Series(author_ours.to_numpy(dtype=bool), index=first["ticket_id"].to_numpy())
    return ticket_ids.astype("int64").map(by_ticket).fillna(False).to_numpy(dtype=bool)


def _texts(tickets: pd.DataFrame, comments: pd.DataFrame, ours: pd.Series) -> pd.DataFrame:
    """Every text a ticket holds: ticket_id, at, text, by_customer (the customer's own words)."""
    head = (tickets["subject"].fillna("").astype("str") + "\n" + tickets["description"].fillna("").astype("str")
            + "\n" + tickets["tags"].fillna("").astype("str"))
    # The mail that opened the ticket is the customer's when its requester is not one of ours
    # and it was not written by one of ours (a reminder sent as a new ticket), or when an agent
    # forwarded it (the original sender is then in via.source.from).
    requester_ours = tickets["requester_id"].astype("Int64").map(ours).astype("boolean")
    head_by_customer = ((requester_ours.eq(False).fillna(False) & ~tickets["opened_by_ours"])
                        | tickets["forwarded_by_customer"])
    parts = [pd.DataFrame({"ticket_id": tickets["id"].to_numpy(), "at": tickets["created_at"].to_numpy(),
                           "text": head.to_numpy(), "by_customer": head_by_customer.to_numpy(dtype=bool)})]
    if len(comments):
        author = comments["author_id"].astype("Int64")
        author_ours = author.map(ours).astype("boolean")
        public = comments["public"].astype("boolean").fillna(True)
        # An author missing from the users export is not known to be ours; internal notes never count.
        by_customer = public & author_ours.fillna(~(author.fillna(0) <= 0)).eq(False)
        parts.append(pd.DataFrame({"ticket_id": comments["ticket_id"].astype("int64").to_numpy(),
                                   "at": comments["created_at"].to_numpy(),
                                   "text": comments["body"].fillna("").astype("str").to_numpy(),
                                   "by_customer": by_customer.fillna(False).to_numpy(dtype=bool)}))
    texts = pd.concat(parts, ignore_index=True)
    texts["text"] = texts["text"].astype("str")
    texts["at"] = pd.to_datetime(texts["at"])
    return texts


def text_kinds(text: pd.Series, holds) -> pd.Series:
    """dispute, payment_claimed or None per text, by the policy's words (a dispute word wins)."""
    kind = pd.Series(None, index=text.index, dtype=object)
    for name, words in ((PAYMENT_CLAIMED, holds.payment_claim_keywords), (DISPUTE, holds.dispute_keywords)):
        pattern = _keyword_pattern(words)
        if pattern:
            kind[text.str.contains(pattern, flags=re.IGNORECASE, regex=True).to_numpy(dtype=bool)] = name
    return kind


def _field_disputes(tickets: pd.DataFrame, field_ids: Sequence[int]) -> pd.Series:
    """Tickets whose custom fields of `field_ids` hold a value (checked, or an option chosen)."""
    raw = _column(tickets, "custom_fields")
    if not field_ids or raw.isna().all():
        return pd.Series(False, index=tickets.index)
    wanted = {int(i) for i in field_ids}
    unset = {None, False, "", "false", "no", "0", 0}

    def flagged(value) -> bool:
        try:
            fields = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            return False
        return any(isinstance(f, dict) and f.get("id") in wanted
                   and (str(f.get("value")).casefold() if isinstance(f.get("value"), str) else f.get("value"))
                   not in unset for f in (fields if isinstance(fields, list) else []))

    distinct = {v: flagged(v) for v in raw.dropna().astype("str").unique()}
    return raw.map(lambda v: distinct.get(str(v), False) if v is not None else False).astype(bool)


def find_promises(texts: pd.DataFrame, pattern: str) -> pd.DataFrame:
    """(ticket_id, until, at) for promise dates read from ticket texts (invalid dates dropped)."""
    found = texts["text"].str.extractall(pattern, flags=re.IGNORECASE)
    if found.empty:
        return pd.DataFrame({"ticket_id": pd.Series(dtype="int64"), "until": pd.Series(dtype="datetime64[s]"),
                             "at": pd.Series(dtype="datetime64[us]")})
    rows = found.index.get_level_values(0)
    until = pd.to_datetime(found["date"], format="%Y-%m-%d", errors="coerce")
    out = pd.DataFrame({"ticket_id": texts["ticket_id"].to_numpy()[rows], "until": until.to_numpy(),
                        "at": texts["at"].to_numpy()[rows]})
    return out.dropna(subset=["until"])


def _customer_invoices(invoices: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    """Number keys of the posted invoices, per customer and company (see invoice_numbers)."""
    posted = invoices[(invoices["state"] == "posted") & invoices["name"].notna()]
    cp_of = commercial_partner_map(customers)
    inv_customer = posted["commercial_partner_id"].astype("Int64").fillna(
        posted["partner_id"].astype("Int64").map(cp_of).astype("Int64"))
    return invoice_numbers.invoice_keys(posted.assign(customer_id=inv_customer))


def _holds_of(texts: pd.DataFrame, named: pd.DataFrame, mentions: pd.DataFrame, tickets: pd.DataFrame,
              policy: DunningPolicy, tz: ZoneInfo) -> pd.DataFrame:
    """(ticket_id, invoice_key, hold_kind, hold_at, hold_until): the hold each ticket puts on each
    invoice it names (invoice_key -1: on the whole customer, when it names none)."""
    holds = policy.holds
    kinds = texts["kind"]
    own = texts["by_customer"].to_numpy(dtype=bool)
    plain = DISPUTE if holds.customer_mention_hold == "dispute" else None
    # The customer naming an invoice: the text's kind, or the policy's for a plain mention.
    m = mentions.join(texts[["ticket_id", "at", "kind", "by_customer"]], on="text_row")
    m = m[m["by_customer"].to_numpy(dtype=bool)]
    per_invoice = pd.DataFrame({"ticket_id": m["ticket_id"], "invoice_key": m["invoice_id"].astype("int64"),
                                "kind": m["kind"].fillna(plain) if plain else m["kind"], "at": m["at"]})
    # Their dispute or payment words without a number of theirs, and dispute tags and fields,
    # are about the invoices the ticket names. Naming none, a tag, a field or a payment claim
    # holds all of the customer's; dispute words alone do not (a support desk hears "damaged"
    # about products every day; an agent tags the ticket when it is about money).
    wide = texts[own & kinds.notna().to_numpy() & ~texts.index.isin(mentions["text_row"])]
    wide = pd.DataFrame({"ticket_id": wide["ticket_id"], "kind": wide["kind"], "at": wide["at"],
                        "whole_customer": wide["kind"] == PAYMENT_CLAIMED})
    flagged = tickets[tickets["dispute_tag"] | tickets["dispute_field"]]
    wide = pd.concat([wide, pd.DataFrame({"ticket_id": flagged["id"], "kind": DISPUTE, "whole_customer": True,
                                          "at": pd.to_datetime(flagged["created_at"])})], ignore_index=True)
    pairs = named[["ticket_id", "invoice_id"]].rename(columns={"invoice_id": "invoice_key"})
    spread = wide.merge(pairs, on="ticket_id", how="left")
    spread = spread[spread["invoice_key"].notna() | spread["whole_customer"].astype(bool)]
    spread = spread.assign(invoice_key=spread["invoice_key"].fillna(-1).astype("int64")).drop(columns="whole_customer")
    sig = pd.concat([per_invoice.dropna(subset=["kind"]), spread], ignore_index=True)
    is_open = sig["ticket_id"].map(tickets.set_index("id")["is_open"]).astype(bool)
    sig = sig[(sig["kind"] == PAYMENT_CLAIMED) | is_open]  # a dispute needs an open ticket
    keys = ["ticket_id", "invoice_key"]
    dispute = sig[sig["kind"] == DISPUTE].groupby(keys)["at"].min()
    claim = sig[sig["kind"] == PAYMENT_CLAIMED].groupby(keys)["at"].max()  # the latest claim is in force
    claim = claim[~claim.index.isin(dispute.index)]
    out = pd.concat([
        pd.DataFrame({"hold_kind": DISPUTE, "hold_at": dispute, "hold_until": pd.NaT}),
        pd.DataFrame({"hold_kind": PAYMENT_CLAIMED, "hold_at": claim,
                      "hold_until": local_day(claim, tz) + pd.Timedelta(days=holds.payment_claim_days)}),
    ])
    out["hold_until"] = pd.to_datetime(out["hold_until"]).astype("datetime64[s]")
    return out.reset_index().rename(columns={"level_0": "ticket_id", "level_1": "invoice_key"})


def leave_out_quarantined(tickets: pd.DataFrame, users: pd.DataFrame, comments: pd.DataFrame,
                          quarantine: pd.DataFrame | None
                          ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The tickets, users and comments less those the data-quality checks hold back, and the list
    of what was left out (EXCLUSION_COLUMNS, one row per record). A held ticket is not matched
    (its comments go with it); a held comment's words make no hold; a held user matches no
    ticket, and their comments, of unknown authorship, are left out too."""
    held = {asset: quarantined_ids(quarantine, asset) for asset in QUARANTINE_ASSETS}
    out_tickets = tickets["id"].astype("int64").isin(held["zendesk_tickets"])
    out_users = users["id"].astype("int64").isin(held["zendesk_users"])
    out_comments = (comments["id"].astype("int64").isin(held["zendesk_comments"])
                    | comments["author_id"].astype("Int64").isin(held["zendesk_users"]).fillna(False))
    if quarantine is None or not any(held.values()):
        return tickets, users, comments, pd.DataFrame(columns=EXCLUSION_COLUMNS)
    rows = quarantine[quarantine["asset"].isin(QUARANTINE_ASSETS)].astype({"record_id": "int64"})
    listed = (rows.groupby(["asset", "record_id"], as_index=False, sort=True)
              .agg(check_name=("check_name", lambda v: ", ".join(sorted(set(v)))),
                   reason=("reason", lambda v: "; ".join(dict.fromkeys(str(r) for r in v)))))
    comment_ticket = pd.Series(comments["ticket_id"].astype("Int64").to_numpy(),
                               index=comments["id"].astype("int64").to_numpy())
    comment_ticket = comment_ticket[~comment_ticket.index.duplicated()]
    ticket_id = pd.Series(pd.NA, index=listed.index, dtype="Int64")
    is_ticket, is_comment = listed["asset"] == "zendesk_tickets", listed["asset"] == "zendesk_comments"
    ticket_id[is_ticket] = listed.loc[is_ticket, "record_id"]
    ticket_id[is_comment] = listed.loc[is_comment, "record_id"].map(comment_ticket)
    listed["ticket_id"] = ticket_id
    return (tickets[~out_tickets.to_numpy()], users[~out_users.to_numpy()], comments[~out_comments.to_numpy()],
            listed[EXCLUSION_COLUMNS])


def build_communications(
    tickets: pd.DataFrame,
    users: pd.DataFrame,
    comments: pd.DataFrame,
    customers: pd.DataFrame,
    invoices: pd.DataFrame,
    policy: DunningPolicy,
    as_of: date,
    tz: ZoneInfo,
) -> pd.DataFrame:
    """Tickets matched to customers and invoices, with contacts and holds (see module doc).

    `invoices` needs id, name, state, commercial_partner_id, partner_id (the raw extract) and
    company_id where known. `tickets` may have email_cc_ids, collaborator_ids, custom_fields
    (JSON), `users` active/suspended: columns a warehouse lacks are read as empty."""
    as_of_ts = pd.Timestamp(as_of)
    tickets = tickets[(tickets["status"] != "deleted")].copy()
    if tickets.empty:
        return empty_communications()
    tickets["id"] = tickets["id"].astype("int64")
    tickets = tickets[local_day(tickets["created_at"], tz).fillna(as_of_ts) <= as_of_ts]
    comments = comments[comments["ticket_id"].astype("int64").isin(tickets["id"])]
    comments = comments[local_day(comments["created_at"], tz).fillna(as_of_ts) <= as_of_ts]

    merged = merge_targets(tickets, comments)
    matched = match_customers(tickets, users, customers, policy, merged)
    tickets = tickets.join(matched)

    ours = our_users(users, policy)
    public = {d.casefold() for d in policy.communications.public_email_domains}
    sender = _norm_email(_column(tickets, "from_address"))
    tickets["forwarded_by_customer"] = (~_domain(sender).isin(_agent_domains(users, public))
                                        & ~sender.isin(_norm_email(users.loc[users["role"].isin(AGENT_ROLES), "email"]))
                                        & sender.notna())
    tickets["opened_by_ours"] = opened_by_ours(tickets["id"], comments, ours)
    texts = _texts(tickets, comments, ours)
    # A merged ticket's texts also speak on the ticket it was merged into.
    carried = texts[texts["ticket_id"].isin(merged.index)].assign(
        ticket_id=lambda t: t["ticket_id"].map(merged).astype("int64"))
    texts = pd.concat([texts, carried], ignore_index=True)
    text_customer = texts["ticket_id"].map(tickets.set_index("id")["customer_id"]).astype("Int64")
    matched_text = text_customer.notna().to_numpy(dtype=bool)
    own = texts["by_customer"].to_numpy(dtype=bool) & matched_text
    texts["kind"] = None
    texts.loc[own, "kind"] = text_kinds(texts.loc[own, "text"], policy.holds)  # only their words mean

    # Invoice numbers named in the texts, matched to the ticket's customer's own invoices: only
    # texts of matched tickets with a digit can name one.
    holds = policy.holds
    pattern = invoice_numbers.text_pattern(holds.invoice_number_pattern, holds.invoice_words)
    searched = np.flatnonzero(matched_text & texts["text"].str.contains(r"\d", regex=True).to_numpy(dtype=bool))
    candidates = invoice_numbers.find_candidates(texts["text"].iloc[searched], pattern)
    candidates["text_row"] = searched[candidates["text_row"].to_numpy()]
    mentions = invoice_numbers.match_numbers(candidates, text_customer, _customer_invoices(invoices, customers))
    named = (mentions.assign(ticket_id=texts["ticket_id"].to_numpy()[mentions["text_row"].to_numpy()],
                             at=texts["at"].to_numpy()[mentions["text_row"].to_numpy()])
             .groupby(["ticket_id", "invoice_id", "invoice_number"], as_index=False)["at"].min()
             .rename(columns={"at": "mentioned_at"}))

    # Contacts: public comments by the customer's side are inbound, by agents outbound.
    role = comments["author_id"].astype("Int64").map(users.set_index(users["id"].astype("int64"))["role"])
    requester = comments["ticket_id"].astype("int64").map(tickets.set_index("id")["requester_id"]).astype("Int64")
    agent = role.isin(AGENT_ROLES) | (role.isna() & (comments["author_id"].astype("Int64") != requester).fillna(True))
    public_comment = comments["public"].astype("boolean").fillna(True)
    contact = pd.DataFrame({"ticket_id": comments["ticket_id"].astype("int64"), "at": comments["created_at"],
                            "outbound": agent.to_numpy(dtype=bool)})[public_comment.to_numpy(dtype=bool)]
    # The ticket's creation is the customer's first message, unless one of ours wrote it.
    created = pd.DataFrame({"ticket_id": tickets["id"], "at": tickets["created_at"],
                            "outbound": (tickets["opened_by_ours"] & ~tickets["forwarded_by_customer"]).to_numpy()})
    contact = pd.concat([contact, created], ignore_index=True)
    contact["at"] = pd.to_datetime(contact["at"])
    outbound = contact["outbound"].to_numpy(dtype=bool)
    for col, side in (("last_inbound_at", ~outbound), ("last_outbound_at", outbound)):
        latest = contact[side].groupby("ticket_id")["at"].max()
        tickets[col] = latest.reindex(tickets["id"].to_numpy()).to_numpy(dtype="datetime64[us]")
    for col in ("last_inbound_at", "last_outbound_at"):
        latest = tickets.groupby("customer_id")[col].transform("max")  # null customer: stays null
        tickets[f"customer_{col}"] = latest.where(tickets["customer_id"].notna()).astype("datetime64[us]")

    tickets["is_open"] = tickets["status"].isin(holds.open_ticket_statuses)
    tag_set = {t.casefold() for t in holds.dispute_tags}
    tag_rows = tag_lists(tickets["tags"]).explode()
    has_dispute_tag = tag_rows.astype("str").str.casefold().isin(tag_set).groupby(level=0).any()
    tickets["dispute_tag"] = has_dispute_tag.reindex(tickets.index, fill_value=False).astype(bool)
    tickets["dispute_field"] = _field_disputes(tickets, holds.dispute_field_ids)

    if holds.promise_pattern:
        promises = find_promises(texts, holds.promise_pattern)
        latest = promises.sort_values("at").groupby("ticket_id")["until"].last()
        # reindex, not map: pandas maps with an empty Series as float64, which a datetime cannot be
        tickets["promise_until"] = latest.reindex(tickets["id"].to_numpy()).to_numpy()
    else:
        tickets["promise_until"] = pd.NaT

    held = _holds_of(texts, named, mentions, tickets, policy, tz)
    out = tickets.rename(columns={"id": "ticket_id", "created_at": "ticket_created_at",
                                  "updated_at": "ticket_updated_at"}).merge(named, on="ticket_id", how="left")
    out["invoice_key"] = out["invoice_id"].fillna(-1).astype("int64")
    out = out.merge(held, on=["ticket_id", "invoice_key"], how="left")
    held_row = out["hold_kind"].notna() & out["customer_id"].notna()
    out["hold_kind"] = out["hold_kind"].where(held_row, None)
    out["hold_until"] = out["hold_until"].where(held_row)
    out["is_dispute"] = (out["hold_kind"] == DISPUTE).to_numpy(dtype=bool)
    out["dispute_scope"] = np.select([held_row & out["invoice_id"].notna(), held_row],
                                     ["invoice", "customer"], default=None)
    out["mentioned_at"] = out["hold_at"].where(held_row, out["mentioned_at"])
    out["invoice_id"] = out["invoice_id"].astype("Int64")
    out["as_of_date"] = as_of_ts
    return out[COLUMNS].sort_values(["ticket_id", "invoice_id"], kind="stable").reset_index(drop=True)


def empty_communications() -> pd.DataFrame:
    types = {"ticket_id": "int64", "invoice_id": "Int64", "customer_id": "Int64", "is_open": "bool",
             "is_dispute": "bool", "requester_id": "Int64", "mentioned_at": "datetime64[us]",
             "promise_until": "datetime64[s]", "ticket_created_at": "datetime64[us]",
             "ticket_updated_at": "datetime64[us]", "last_inbound_at": "datetime64[us]",
             "last_outbound_at": "datetime64[us]", "customer_last_inbound_at": "datetime64[us]",
             "customer_last_outbound_at": "datetime64[us]", "as_of_date": "datetime64[s]",
             "hold_until": "datetime64[s]"}
    return pd.DataFrame({c: pd.Series(dtype=types.get(c, object)) for c in COLUMNS})


def customer_contacts(communications: pd.DataFrame) -> pd.DataFrame:
    """Last inbound and outbound contact per customer."""
    matched = communications[communications["customer_id"].notna()]
    return matched.drop_duplicates("customer_id")[
        ["customer_id", "customer_last_inbound_at", "customer_last_outbound_at"]].reset_index(drop=True)
