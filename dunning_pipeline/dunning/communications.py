"""Zendesk tickets matched to customers and invoices: contacts, disputes, promises.

A ticket belongs to a customer (an Odoo commercial partner) when, in this order:
1. its requester's email is the email of the customer or one of its contacts (`requester_email`);
2. the address it was sent from is (`sender_email`);
3. its Zendesk organization is that of requesters already matched to exactly one customer
   (`organization`);
4. the requester's email domain is used by exactly one customer and is not a public mail
   provider (`domain`, if enabled in the policy).
Invoice numbers are found in the subject, the description, the tags and every comment by
extracting candidates with the policy's pattern (`str.extractall`) and joining them to the
customer's invoices: one regex pass over the texts, never a loop over invoices.

One output row per (ticket, invoice named in it); a ticket naming none of its customer's
invoices has one row with no invoice. An open ticket of the customer (status in the policy's
`open_ticket_statuses`) that names an invoice disputes that invoice; an open ticket with a
dispute tag that names none disputes all of the customer's invoices.

Timestamps are naive UTC; the day of an event is taken in the business time zone passed in.
Nothing after the as-of day is looked at, so a past day can be replayed. Pure pandas.
"""

from __future__ import annotations

import re
from datetime import date
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from dunning_pipeline.dunning.policy import DunningPolicy
from dunning_pipeline.dunning.receivables import commercial_partner_map, tag_lists

COLUMNS = [
    "ticket_id", "invoice_id", "invoice_number", "customer_id", "match_method", "status", "is_open",
    "is_dispute", "dispute_scope", "subject", "requester_id", "requester_email", "tags", "mentioned_at",
    "promise_until", "ticket_created_at", "ticket_updated_at", "last_inbound_at", "last_outbound_at",
    "customer_last_inbound_at", "customer_last_outbound_at", "as_of_date",
]
AGENT_ROLES = ("agent", "admin")


def local_day(ts: pd.Series, tz: ZoneInfo) -> pd.Series:
    """Naive UTC timestamps -> the calendar day in `tz`, as datetime64 at midnight."""
    t = pd.to_datetime(ts)
    return t.dt.tz_localize("UTC").dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()


def _norm_email(s: pd.Series) -> pd.Series:
    """Addresses stripped and case-folded (object dtype, None where missing)."""
    out = pd.Series(None, index=s.index, dtype=object)
    known = s[s.notna()].astype("str")
    out[known.index] = known.str.strip().str.casefold().to_numpy(dtype=object)
    return out


def _domain(emails: pd.Series) -> pd.Series:
    """The part after the last '@' of normalized addresses (null without one)."""
    out = pd.Series(None, index=emails.index, dtype=object)
    known = emails[emails.notna()].astype("str")
    known = known[known.str.contains("@", regex=False)]
    out[known.index] = known.str.rsplit("@", n=1).str[-1].to_numpy(dtype=object)
    return out


def _unique_map(keys: pd.Series, values: pd.Series) -> pd.Series:
    """key -> value for keys that map to exactly one distinct value (ambiguous keys dropped)."""
    frame = pd.DataFrame({"k": keys.to_numpy(), "v": values.to_numpy()}).dropna().drop_duplicates()
    counts = frame.groupby("k")["v"].transform("size")
    frame = frame[counts == 1]
    return pd.Series(frame["v"].to_numpy(), index=frame["k"].to_numpy())


def match_customers(tickets: pd.DataFrame, users: pd.DataFrame, customers: pd.DataFrame,
                    policy: DunningPolicy) -> pd.DataFrame:
    """customer_id and match_method per ticket (index aligned with `tickets`)."""
    cp_of = commercial_partner_map(customers)
    partner_email = _norm_email(customers["email"])
    by_email = _unique_map(partner_email, customers["id"].astype("int64").map(cp_of))

    user_email = users.set_index(users["id"].astype("int64"))["email"]
    requester_email = _norm_email(tickets["requester_id"].astype("Int64").map(user_email))
    sender_email = (_norm_email(tickets["from_address"]) if "from_address" in tickets
                    else pd.Series(None, index=tickets.index, dtype=object))

    customer = requester_email.map(by_email).astype("Int64")
    method = pd.Series(np.where(customer.notna(), "requester_email", None), index=tickets.index, dtype=object)
    take = customer.isna() & sender_email.map(by_email).notna()
    customer = customer.mask(take, sender_email.map(by_email).astype("Int64"))
    method = method.mask(take, "sender_email")

    # Organizations: the one customer that the organization's email-matched users belong to.
    users_cp = _norm_email(users["email"]).map(by_email)
    org_map = _unique_map(users["organization_id"].astype("Int64"), users_cp.astype("Int64"))
    org = tickets["organization_id"].astype("Int64")
    user_org = users.set_index(users["id"].astype("int64"))["organization_id"]
    org = org.fillna(tickets["requester_id"].astype("Int64").map(user_org).astype("Int64"))
    take = customer.isna() & org.map(org_map).notna()
    customer = customer.mask(take, org.map(org_map).astype("Int64"))
    method = method.mask(take, "organization")

    if policy.communications.match_by_domain:
        public = {d.casefold() for d in policy.communications.public_email_domains}
        pdomain = _domain(partner_email)
        pdomain = pdomain.where(~pdomain.isin(public))
        by_domain = _unique_map(pdomain, customers["id"].astype("int64").map(cp_of))
        tdomain = _domain(requester_email.fillna(sender_email))
        take = customer.isna() & tdomain.map(by_domain).notna()
        customer = customer.mask(take, tdomain.map(by_domain).astype("Int64"))
        method = method.mask(take, "domain")

    return pd.DataFrame({"customer_id": customer.astype("Int64"),
                         "match_method": method.fillna("unmatched"),
                         "requester_email": requester_email.fillna(sender_email)}, index=tickets.index)


def _texts(tickets: pd.DataFrame, comments: pd.DataFrame) -> pd.DataFrame:
    """Every text a ticket holds, with when it was written: ticket_id, at, text, public."""
    head = (tickets["subject"].fillna("").astype("str") + "\n" + tickets["description"].fillna("").astype("str")
            + "\n" + tickets["tags"].fillna("").astype("str"))
    parts = [pd.DataFrame({"ticket_id": tickets["id"].to_numpy(), "at": tickets["created_at"].to_numpy(),
                           "text": head.to_numpy()})]
    if len(comments):
        parts.append(pd.DataFrame({"ticket_id": comments["ticket_id"].astype("int64").to_numpy(),
                                   "at": comments["created_at"].to_numpy(),
                                   "text": comments["body"].fillna("").astype("str").to_numpy()}))
    texts = pd.concat(parts, ignore_index=True)
    texts["text"] = texts["text"].astype("str")
    return texts


def find_mentions(texts: pd.DataFrame, pattern: str) -> pd.DataFrame:
    """(ticket_id, number, at) for every invoice-number candidate in the texts, upper-cased."""
    found = texts["text"].str.extractall(f"(?P<number>{pattern})", flags=re.IGNORECASE)
    if found.empty:
        return pd.DataFrame({"ticket_id": pd.Series(dtype="int64"), "number": pd.Series(dtype="str"),
                             "at": pd.Series(dtype="datetime64[us]")})
    rows = found.index.get_level_values(0)
    return pd.DataFrame({"ticket_id": texts["ticket_id"].to_numpy()[rows],
                         "number": found["number"].astype("str").str.upper().to_numpy(),
                         "at": texts["at"].to_numpy()[rows]})


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
    """Tickets matched to customers and invoices, with contacts and disputes (see module doc).

    `invoices` needs id, name, state, company_id, commercial_partner_id, partner_id (the raw extract)."""
    as_of_ts = pd.Timestamp(as_of)
    tickets = tickets[(tickets["status"] != "deleted")].copy()
    if tickets.empty:
        return empty_communications()
    tickets["id"] = tickets["id"].astype("int64")
    tickets = tickets[local_day(tickets["created_at"], tz).fillna(as_of_ts) <= as_of_ts]
    comments = comments[comments["ticket_id"].astype("int64").isin(tickets["id"])]
    comments = comments[local_day(comments["created_at"], tz).fillna(as_of_ts) <= as_of_ts]

    matched = match_customers(tickets, users, customers, policy)
    tickets = tickets.join(matched)

    # Invoice numbers named in the ticket, joined to that customer's posted invoices.
    texts = _texts(tickets, comments)
    mentions = find_mentions(texts, policy.holds.invoice_number_pattern)
    first = mentions.groupby(["ticket_id", "number"], as_index=False)["at"].min()
    posted = invoices[(invoices["state"] == "posted") & invoices["name"].notna()]
    cp_of = commercial_partner_map(customers)
    inv_customer = posted["commercial_partner_id"].astype("Int64").fillna(
        posted["partner_id"].astype("Int64").map(cp_of).astype("Int64"))
    # Numbers are unique per company only: an invoice is keyed by (company_id, number), so the
    # same number in two companies is two invoices, each found only by its own customer.
    inv_keys = pd.DataFrame({"invoice_id": posted["id"].astype("int64").to_numpy(),
                             "company_id": posted["company_id"].astype("Int64").to_numpy(),
                             "invoice_number": posted["name"].astype("str").to_numpy(),
                             "number": posted["name"].astype("str").str.upper().to_numpy(),
                             "inv_customer": inv_customer.to_numpy()})
    first = first.merge(tickets[["id", "customer_id"]].rename(columns={"id": "ticket_id"}), on="ticket_id")
    named = first.merge(inv_keys, left_on=["number", "customer_id"], right_on=["number", "inv_customer"])
    named = named[["ticket_id", "invoice_id", "invoice_number", "at"]].rename(columns={"at": "mentioned_at"})

    # Contacts: public comments by the customer's side are inbound, by agents outbound.
    role = comments["author_id"].astype("Int64").map(users.set_index(users["id"].astype("int64"))["role"])
    requester = comments["ticket_id"].astype("int64").map(tickets.set_index("id")["requester_id"]).astype("Int64")
    agent = role.isin(AGENT_ROLES) | (role.isna() & (comments["author_id"].astype("Int64") != requester).fillna(True))
    public = comments["public"].astype("boolean").fillna(True)
    contact = pd.DataFrame({"ticket_id": comments["ticket_id"].astype("int64"), "at": comments["created_at"],
                            "outbound": agent.to_numpy(dtype=bool)})[public.to_numpy(dtype=bool)]
    # The ticket's creation is the customer's first message.
    created = pd.DataFrame({"ticket_id": tickets["id"], "at": tickets["created_at"], "outbound": False})
    contact = pd.concat([contact, created], ignore_index=True)
    contact["at"] = pd.to_datetime(contact["at"])
    outbound = contact["outbound"].to_numpy(dtype=bool)
    for col, side in (("last_inbound_at", ~outbound), ("last_outbound_at", outbound)):
        latest = contact[side].groupby("ticket_id")["at"].max()
        tickets[col] = latest.reindex(tickets["id"].to_numpy()).to_numpy(dtype="datetime64[us]")
    for col in ("last_inbound_at", "last_outbound_at"):
        latest = tickets.groupby("customer_id")[col].transform("max")  # null customer: stays null
        tickets[f"customer_{col}"] = latest.where(tickets["customer_id"].notna()).astype("datetime64[us]")

    holds = policy.holds
    tickets["is_open"] = tickets["status"].isin(holds.open_ticket_statuses)
    tag_set = {t.casefold() for t in holds.dispute_tags}
    tag_rows = tag_lists(tickets["tags"]).explode()
    has_dispute_tag = tag_rows.astype("str").str.casefold().isin(tag_set).groupby(level=0).any()
    tickets["dispute_tag"] = has_dispute_tag.reindex(tickets.index, fill_value=False)

    if holds.promise_pattern:
        promises = find_promises(texts, holds.promise_pattern)
        latest = promises.sort_values("at").groupby("ticket_id")["until"].last()
        tickets["promise_until"] = tickets["id"].map(latest)
    else:
        tickets["promise_until"] = pd.NaT

    out = tickets.rename(columns={"id": "ticket_id", "created_at": "ticket_created_at",
                                  "updated_at": "ticket_updated_at"}).merge(named, on="ticket_id", how="left")
    has_customer = out["customer_id"].notna()
    invoice_dispute = out["is_open"] & has_customer & out["invoice_id"].notna()
    customer_dispute = out["is_open"] & has_customer & out["invoice_id"].isna() & out["dispute_tag"]
    out["is_dispute"] = invoice_dispute | customer_dispute
    out["dispute_scope"] = np.select([invoice_dispute, customer_dispute], ["invoice", "customer"], default=None)
    mentioned = out["mentioned_at"].fillna(out["ticket_created_at"])
    out["mentioned_at"] = mentioned.where(out["is_dispute"] | out["invoice_id"].notna())
    out["invoice_id"] = out["invoice_id"].astype("Int64")
    out["as_of_date"] = as_of_ts
    return out[COLUMNS].sort_values(["ticket_id", "invoice_id"], kind="stable").reset_index(drop=True)


def empty_communications() -> pd.DataFrame:
    types = {"ticket_id": "int64", "invoice_id": "Int64", "customer_id": "Int64", "is_open": "bool",
             "is_dispute": "bool", "requester_id": "Int64", "mentioned_at": "datetime64[us]",
             "promise_until": "datetime64[s]", "ticket_created_at": "datetime64[us]",
             "ticket_updated_at": "datetime64[us]", "last_inbound_at": "datetime64[us]",
             "last_outbound_at": "datetime64[us]", "customer_last_inbound_at": "datetime64[us]",
             "customer_last_outbound_at": "datetime64[us]", "as_of_date": "datetime64[s]"}
    return pd.DataFrame({c: pd.Series(dtype=types.get(c, object)) for c in COLUMNS})


def customer_contacts(communications: pd.DataFrame) -> pd.DataFrame:
    """Last inbound and outbound contact per customer."""
    matched = communications[communications["customer_id"].notna()]
    return matched.drop_duplicates("customer_id")[
        ["customer_id", "customer_last_inbound_at", "customer_last_outbound_at"]].reset_index(drop=True)
