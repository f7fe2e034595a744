"""The sandbox's data: a seeded, deterministic, realistic Odoo + Zendesk dataset, and its next nights.

`generate(seed, customers, invoices, as_of)` builds a `SandboxData` whose lists hold records in
the exact shape the real APIs send them (Odoo: `false` for empty values, many2one as
`[id, "name"]`, money as JSON floats with the currency's decimals, datetimes as
"YYYY-MM-DD HH:MM:SS" UTC; Zendesk: ISO "...Z" timestamps, large integer ids). The servers read
these lists live, so a test may edit a record and the next request sees it.

The simulated clock: `data.now` is `as_of` at 23:00 UTC; every generated timestamp lies before
it. `advance_night()` moves to the next day and stamps that day's changes (payments, new and
cancelled invoices, credit notes, ticket updates) with times of that day, so an incremental
extraction by `write_date` / the Zendesk cursor picks them up.

Invariants kept (tests rely on them): `moves`, `partners`, `zendesk_tickets`, `zendesk_users`
are sorted by id; for every move 0 <= amount_residual <= amount_total; the `*_signed` amounts are
in company currency and negative for credit notes; drafts are named "/".
"""

from __future__ import annotations

import array
import bisect
import itertools
import random
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

UTC = timezone.utc

DB_NAME = "dunning_demo"
ADMIN_LOGIN = "admin"
ADMIN_UID = 2
ADMIN_PARTNER_ID = 3

# Currencies: id, ISO code, symbol, decimals, units of the currency per 1 EUR * 10,000 (fixed rates,
# so company-currency amounts are reproducible to the cent), full name.
CURRENCY_TABLE = [
    (1, "USD", "$", 2, 10_800, "US Dollar"),
    (6, "CHF", "CHF", 2, 9_500, "Swiss Franc"),
    (113, "JPY", "¥", 0, 1_620_000, "Japanese Yen"),
    (125, "EUR", "€", 2, 10_000, "Euro"),
    (147, "GBP", "£", 2, 8_500, "Pound Sterling"),
]
CURRENCY_BY_CODE = {row[1]: row for row in CURRENCY_TABLE}
RATES_PER_EUR = {row[1]: row[4] for row in CURRENCY_TABLE}  # * 10,000

# Payment terms: id -> (name, days). False (no term) means a due date typed by hand.
PAYMENT_TERMS = {
    1: ("Immediate Payment", 0),
    2: ("15 Days", 15),
    3: ("21 Days", 21),
    4: ("30 Days", 30),
    5: ("45 Days", 45),
    10: ("60 Days", 60),
}

# Payment terms of several instalments: id -> (name, days of the plain term they replace,
# ((share numerator, denominator, days from the invoice date), ...)); the last takes the balance.
# A share of the invoices on that plain term gets one of these (see `_real_ledger_shapes`).
INSTALMENT_TERMS = {
    20: ("30% Now, Balance 60 Days", 60, ((3, 10, 0), (7, 10, 60))),
    21: ("3 Instalments 15/30/45 Days", 45, ((1, 3, 15), (1, 3, 30), (1, 3, 45))),
    22: ("50% Now, Balance 30 Days", 30, ((1, 2, 0), (1, 2, 30))),
}
INSTALMENT_SHARE = 0.4  # of the invoices on a 30, 45 or 60 day term
BLOCKED_SHARE = 0.04  # of the open invoices: payment blocked in Odoo 18 (still owed)
SHARED_NUMBERS = 2  # company 2 invoices numbered like one of company 1 (numbers are per company)
RECEIVABLE_ACCOUNTS = {1: (6, "121000 Account Receivable"), 2: (56, "121000 Account Receivable")}
LINE_IDS_PER_MOVE = 8  # line id = move id * 8 + position: ids ascend with the moves

COUNTRIES = {  # code: (odoo id, name, langs, tld, phone prefix)
    "DE": (57, "Germany", ["de_DE"], "de", "+49"),
    "AT": (13, "Austria", ["de_DE"], "at", "+43"),
    "CH": (43, "Switzerland", ["de_CH", "fr_CH"], "ch", "+41"),
    "FR": (75, "France", ["fr_FR"], "fr", "+33"),
    "BE": (20, "Belgium", ["fr_BE", "nl_BE"], "be", "+32"),
    "NL": (165, "Netherlands", ["nl_NL"], "nl", "+31"),
    "GB": (231, "United Kingdom", ["en_GB"], "co.uk", "+44"),
    "US": (233, "United States", ["en_US"], "com", "+1"),
    "JP": (113, "Japan", ["ja_JP"], "co.jp", "+81"),
}

_COMPANY_WORDS = {
    "de": (["Müller", "Schmidt", "Becker", "Hoffmann", "Nordlicht", "Alpen", "Rhein", "Weber",
            "Fischer", "Krause", "Sonnenschein", "Elbe", "Hansa", "Bayern", "Weiß", "Schäfer"],
           ["Logistik", "Maschinenbau", "Elektro", "Bau", "Handel", "Medizintechnik", "Software",
            "Feinkost", "Druck", "Metallbau", "Kältetechnik"],
           ["GmbH", "AG", "GmbH & Co. KG", "KG", "GmbH"]),
    "fr": (["Dupont", "Lefèvre", "Moreau", "Bellevue", "Provence", "Garnier", "Rousseau",
            "Lumière", "Côte d'Azur", "Marchand"],
           ["Industries", "Distribution", "Conseil", "Transports", "Services", "Énergie", "Bâtiment"],
           ["SARL", "SA", "SAS"]),
    "en": (["Bluewater", "Summit", "Pioneer", "Redwood", "Granite", "Liberty", "Silverline",
            "Cascade", "Evergreen", "Lakeshore", "Harbour", "Thames", "Kingsley", "Oakridge",
            "Smith & Sons", "O'Neill"],
           ["Analytics", "Foods", "Manufacturing", "Health", "Logistics", "Systems", "Supply",
            "Labs", "Robotics", "Engineering", "Consulting", "Retail", "Freight"],
           ["Inc.", "LLC", "Corp.", "Ltd", "PLC"]),
    "nl": (["Van Dijk", "De Vries", "Oranje", "Delta", "Polder"],
           ["Techniek", "Handel", "Transport", "Groep"], ["B.V.", "N.V."]),
    "ja": (["Sakura", "Fuji", "Kobayashi", "Tokai"], ["Trading", "Electronics", "Seiki"],
           ["K.K.", "Co., Ltd."]),
}
_PEOPLE = {
    "de": (["Jürgen", "Anna", "Katrin", "Matthias", "Sabine", "Lukas", "Sophie", "Stefan", "Petra",
            "Jörg", "Björn", "Maximilian"],
           ["Müller", "Schmidt", "Weiß", "Schäfer", "Krüger", "Wagner", "Becker", "Hoffmann", "Groß"]),
    "fr": (["François", "Camille", "Hélène", "Julien", "Émilie", "Pierre", "Chloé", "Nicolas"],
           ["Lefèvre", "Dubois", "Moreau", "Girard", "Bonnet", "Dupont", "Rousseau"]),
    "en": (["John", "Emily", "Michael", "Sarah", "David", "Jessica", "Zoë", "Liam", "Olivia"],
           ["Smith", "O'Brien", "Johnson", "Williams", "Brown", "Taylor", "McAllister", "Lee"]),
    "nl": (["Jan", "Sanne", "Pieter", "Femke"], ["de Vries", "Jansen", "van den Berg", "Bakker"]),
    "ja": (["Hiroshi", "Yuki", "Kenji", "Aiko"], ["Tanaka", "Suzuki", "Sato", "Kobayashi"]),
}
_AP_MAILBOX = {"de": "buchhaltung", "fr": "comptabilite", "nl": "crediteuren", "ja": "accounting",
               "en": "accounts.payable"}
_CITIES = {
    "DE": ["Berlin", "Hamburg", "München", "Köln", "Bielefeld", "Leipzig"], "AT": ["Wien", "Graz"],
    "CH": ["Zürich", "Genève", "Basel"], "FR": ["Paris", "Lyon", "Marseille", "Lille"],
    "BE": ["Bruxelles", "Antwerpen"], "NL": ["Amsterdam", "Rotterdam"],
    "GB": ["London", "Manchester", "Leeds"], "US": ["Chicago", "Austin", "Seattle", "Boston"],
    "JP": ["Tokyo", "Osaka"],
}
PARTNER_TAGS = [  # id, name, active
    (1, "Key Account", True),
    (2, "Public Sector", True),
    (3, "SME", True),
    (4, "Reseller", True),
    (5, "Legacy", False),
]

COMPANY_DOMAIN = "nordwind-trading.com"
ZENDESK_ADMIN_EMAIL = f"finance-bot@{COMPANY_DOMAIN}"
_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e", "è": "e",
                           "ê": "e", "ë": "e", "ô": "o", "â": "a", "à": "a", "ç": "c", "î": "i",
                           "É": "e", "Ä": "ae", "Ö": "oe", "Ü": "ue", "'": ""})


# ---------------------------------------------------------------------------------------------
# Formatting helpers (wire formats)
# ---------------------------------------------------------------------------------------------

_DAY_TEXT: dict[int, str] = {}


def _day_text(dt: datetime) -> str:
    ordinal = dt.toordinal()
    text = _DAY_TEXT.get(ordinal)
    if text is None:
        text = _DAY_TEXT[ordinal] = dt.date().isoformat()
    return text


def odoo_datetime(dt: datetime) -> str:
    """Odoo's datetime wire format: UTC, no zone marker (fast: called for every generated record)."""
    if dt.tzinfo is not UTC:
        dt = dt.astimezone(UTC)
    return f"{_day_text(dt)} {dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"


def zendesk_datetime(dt: datetime) -> str:
    if dt.tzinfo is not UTC:
        dt = dt.astimezone(UTC)
    return f"{_day_text(dt)}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}Z"


_DATE_TEXT: dict[date, str] = {}


def date_text(day: date) -> str:
    """A date's ISO text, shared between records (a million invoices share a few hundred dates)."""
    text = _DATE_TEXT.get(day)
    if text is None:
        text = _DATE_TEXT[day] = day.isoformat()
    return text


def parse_zendesk_datetime(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def minor_to_float(minor: int, decimals: int) -> float | int:
    """An amount in minor units as the JSON number Odoo sends (1234.5 for 123450 cents)."""
    return float(minor) if decimals == 0 else minor / (10 ** decimals)


def convert_minor(minor: int, from_code: str, to_code: str) -> int:
    """Convert minor units between currencies at the fixed rates, rounding half up (exact integers)."""
    if from_code == to_code:
        return minor
    _, _, _, dec_from, rate_from, _ = CURRENCY_BY_CODE[from_code]
    _, _, _, dec_to, rate_to, _ = CURRENCY_BY_CODE[to_code]
    num = abs(minor) * rate_to * 10 ** dec_to
    den = rate_from * 10 ** dec_from
    out = (2 * num + den) // (2 * den)
    return -out if minor < 0 else out


def _slug(text: str) -> str:
    out = []
    for ch in text.lower().translate(_TRANSLIT):
        out.append(ch if ch.isascii() and ch.isalnum() else "-")
    return "-".join(part for part in "".join(out).split("-") if part)


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY_TEXT_BY_NUMBER: dict[int, str] = {}
_DATE_BY_NUMBER: dict[int, date] = {}
_HMS: list[str] = []


def day_epoch(day: date) -> int:
    """Seconds since the epoch at 00:00 UTC of `day` (generation works in integer seconds)."""
    return (day.toordinal() - _EPOCH_ORDINAL) * 86400


def ts_date(ts: int) -> date:
    number = ts // 86400
    day = _DATE_BY_NUMBER.get(number)
    if day is None:
        day = _DATE_BY_NUMBER[number] = date.fromordinal(number + _EPOCH_ORDINAL)
    return day


def odoo_ts(ts: int) -> str:
    """`odoo_datetime` for integer epoch seconds, by table lookups (a million calls)."""
    if not _HMS:
        _HMS.extend(f"{h:02d}:{m:02d}:{sec:02d}" for h in range(24) for m in range(60) for sec in range(60))
    number = ts // 86400
    text = _DAY_TEXT_BY_NUMBER.get(number)
    if text is None:
        text = _DAY_TEXT_BY_NUMBER[number] = ts_date(ts).isoformat()
    return f"{text} {_HMS[ts % 86400]}"


def _at(day: date, seconds: int) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC) + timedelta(seconds=seconds)


# ---------------------------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------------------------

@dataclass
class NightChanges:
    """What one `advance_night()` changed (ids), so tests can assert an incremental run saw it."""

    as_of: date
    paid: list[int] = field(default_factory=list)
    partially_paid: list[int] = field(default_factory=list)
    reconciled: list[int] = field(default_factory=list)  # in_payment -> paid
    new_invoices: list[int] = field(default_factory=list)
    posted_drafts: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    credit_notes: list[int] = field(default_factory=list)  # new out_refund ids
    reversed_invoices: list[int] = field(default_factory=list)
    partners_updated: list[int] = field(default_factory=list)
    tickets_updated: list[int] = field(default_factory=list)
    tickets_new: list[int] = field(default_factory=list)
    comments_new: list[int] = field(default_factory=list)
    # Re-sent by the export: generated_timestamp moved, updated_at (and the ticket) did not.
    tickets_resent: list[int] = field(default_factory=list)

    @property
    def moves_changed(self) -> list[int]:
        return sorted(set(self.paid + self.partially_paid + self.reconciled + self.new_invoices
                          + self.posted_drafts + self.cancelled + self.credit_notes
                          + self.reversed_invoices))


@dataclass
class SandboxData:
    """Everything the sandbox servers serve. Lists are live: the servers read them per request."""

    seed: int
    as_of: date
    now: datetime
    companies: list[dict]
    currencies: list[dict]
    partner_categories: list[dict]
    payment_terms: list[dict]
    partners: list[dict]
    moves: list[dict]
    zendesk_organizations: list[dict]
    zendesk_users: list[dict]
    zendesk_tickets: list[dict]
    zendesk_comments: dict[int, list[dict]]
    # Named Zendesk situations (see `_zendesk_scenarios`): name -> ticket ids and what to expect.
    zendesk_scenarios: dict[str, dict] = field(default_factory=dict)
    # account.partial.reconcile: one record per receivable line each payment or credit note
    # settled (part of), dated on the day it happened; sorted by id (see `_reconcile`).
    reconciliations: list[dict] = field(default_factory=list)
    nights: int = 0
    # Bumped by every change made through this module; servers cache indexes per version.
    version: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    _seq: dict = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:  # the lists are huge: keep reprs readable
        return (f"SandboxData(seed={self.seed}, as_of={self.as_of}, partners={len(self.partners)},"
                f" moves={len(self.moves)}, tickets={len(self.zendesk_tickets)}, nights={self.nights})")

    # -- lookups -------------------------------------------------------------------------------
    def move(self, move_id: int) -> dict:
        return _by_id(self.moves, move_id)

    def partner(self, partner_id: int) -> dict:
        return _by_id(self.partners, partner_id)

    def ticket(self, ticket_id: int) -> dict:
        return _by_id(self.zendesk_tickets, ticket_id)

    def currency_code(self, currency_id: int) -> str:
        return next(c["name"] for c in self.currencies if c["id"] == currency_id)

    def changed(self) -> None:
        """Call after editing the lists by hand at large sizes: drops the servers' cached indexes."""
        self.version += 1

    def advance_night(self) -> NightChanges:
        return advance_night(self)


def _by_id(records: list[dict], record_id: int) -> dict:
    i = bisect.bisect_left(records, record_id, key=lambda r: r["id"])
    if i < len(records) and records[i]["id"] == record_id:
        return records[i]
    raise KeyError(record_id)


def is_open_receivable(move: dict, tolerance: float = 0.01) -> bool:
    """A posted customer invoice or credit note that is not_paid, partial or blocked (still owed)
    with a residual above tolerance."""
    return (move["state"] == "posted" and move["move_type"] in ("out_invoice", "out_refund")
            and move["payment_state"] in ("not_paid", "partial", "blocked")
            and move["amount_residual"] > tolerance)


def open_receivables(data: SandboxData, tolerance: float = 0.01) -> list[dict]:
    """The moves the pipeline must treat as open receivables (for tests' expected totals)."""
    return [m for m in data.moves if is_open_receivable(m, tolerance)]


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------

class _FastRandom(random.Random):
    """random.Random with cheaper integer draws (a million invoices make millions of them).

    Deterministic for a seed like its base class; the tiny bias of scaling random() is irrelevant
    for test data.
    """

    def randrange(self, start, stop=None, step=1):
        if stop is None:
            start, stop = 0, start
        if step != 1 or stop <= start:
            return super().randrange(start, stop, step)
        return start + int(self.random() * (stop - start))

    def randint(self, a, b):
        return a + int(self.random() * (b - a + 1))

    def choice(self, seq):
        if not seq:
            raise IndexError("Cannot choose from an empty sequence")
        return seq[int(self.random() * len(seq))]


class _Builder:
    """Holds the random source and the sequences while a dataset is built."""

    def __init__(self, seed, as_of: date, progress):
        self.rng = _FastRandom(seed)
        self.as_of = as_of
        self.now = datetime.combine(as_of, time(23, 0), tzinfo=UTC)
        self.progress = progress or (lambda msg: None)
        self.m2o_cache: dict = {}

    # many2one pairs are shared objects: a million moves must not hold a million small lists
    def m2o(self, rec_id: int, name: str) -> list:
        key = (rec_id, name)
        pair = self.m2o_cache.get(key)
        if pair is None:
            pair = self.m2o_cache[key] = [rec_id, name]
        return pair


def generate(seed: int = 7, customers: int = 40, invoices: int = 400,
             as_of: date = date(2026, 3, 2), tickets: int | None = None,
             progress=None) -> SandboxData:
    """Build a dataset.

    customers: commercial partners (companies, ~10% private persons) that buy from us;
    invoices: account.move records in total (customer invoices plus the credit notes, drafts,
    cancelled moves and vendor bills mixed in as in a real ledger);
    tickets: Zendesk tickets (default: invoices // 8, at least 20);
    progress: optional callable receiving one-line progress messages.
    """
    if customers < 1 or invoices < 1:
        raise ValueError("customers and invoices must be at least 1")
    if isinstance(as_of, datetime) or not isinstance(as_of, date):
        raise TypeError("as_of must be a datetime.date")
    b = _Builder(seed, as_of, progress)
    companies, currencies, categories, terms, company_partners = _static_records(b)
    b.progress(f"generating {customers} customers")
    partners, customer_info = _partners(b, customers, company_partners)
    b.progress(f"generating {invoices} account.move records")
    moves, seq = _moves(b, invoices, customer_info, partners, companies)
    _real_ledger_shapes(b, seed, moves)
    reconciliations = _replay_payments(seq["_factory"], moves)
    n_tickets = max(20, invoices // 8) if tickets is None else tickets
    b.progress(f"generating Zendesk organizations, users and {n_tickets} tickets")
    orgs, users, zd_tickets, comments, scenarios = _zendesk(b, n_tickets, customer_info, moves)
    b.progress("data ready")
    return SandboxData(
        seed=seed, as_of=as_of, now=b.now, companies=companies, currencies=currencies,
        partner_categories=categories, payment_terms=terms, partners=partners, moves=moves,
        zendesk_organizations=orgs, zendesk_users=users, zendesk_tickets=zd_tickets,
        zendesk_comments=comments, zendesk_scenarios=scenarios, reconciliations=reconciliations, _seq=seq,
    )


def _static_records(b: _Builder):
    created = odoo_datetime(_at(b.as_of - timedelta(days=900), 9 * 3600))
    currencies = [{
        "id": cid, "name": code, "symbol": sym, "decimal_places": dec,
        "rounding": 1.0 if dec == 0 else 0.01, "rate": rate / 10_000, "full_name": full,
        "active": True, "write_date": created,
    } for cid, code, sym, dec, rate, full in CURRENCY_TABLE]
    companies = [
        {"id": 1, "name": "Nordwind Trading GmbH", "currency_id": b.m2o(125, "EUR"),
         "partner_id": b.m2o(1, "Nordwind Trading GmbH"), "country_id": b.m2o(57, "Germany"),
         "email": f"billing@{COMPANY_DOMAIN}", "vat": "DE811234567", "write_date": created},
        {"id": 2, "name": "Nordwind Trading Inc.", "currency_id": b.m2o(1, "USD"),
         "partner_id": b.m2o(5, "Nordwind Trading Inc."), "country_id": b.m2o(233, "United States"),
         "email": f"billing-us@{COMPANY_DOMAIN}", "vat": False, "write_date": created},
    ]
    categories = [{"id": cid, "name": name, "display_name": name, "color": cid, "parent_id": False,
                   "active": active, "write_date": created} for cid, name, active in PARTNER_TAGS]
    terms = [{"id": tid, "name": name, "display_name": name, "active": True, "write_date": created}
             for tid, (name, _days) in PAYMENT_TERMS.items()]
    terms += [{"id": tid, "name": name, "display_name": name, "active": True, "write_date": created}
              for tid, (name, _days, _parts) in INSTALMENT_TERMS.items()]

    def internal(pid, name, email, active=True, company_id=False, country=False, is_company=True):
        return _partner_record(b, pid, name, display=name, email=email, phone=False, vat=False,
                               lang="en_US", country=country, is_company=is_company, parent=None,
                               commercial=(pid, name), customer_rank=0, supplier_rank=0, tags=[],
                               company_id=company_id, active=active, city=False, ptype="contact",
                               created=created)

    company_partners = [
        internal(1, "Nordwind Trading GmbH", f"billing@{COMPANY_DOMAIN}", company_id=1,
                 country=b.m2o(57, "Germany")),
        internal(2, "OdooBot", "odoobot@example.com", active=False, is_company=False),
        internal(3, "Administrator", f"admin@{COMPANY_DOMAIN}", company_id=1, is_company=False),
        internal(5, "Nordwind Trading Inc.", f"billing-us@{COMPANY_DOMAIN}", company_id=2,
                 country=b.m2o(233, "United States")),
    ]
    return companies, currencies, categories, terms, company_partners


def _partner_record(b: _Builder, pid, name, *, display, email, phone, vat, lang, country,
                    is_company, parent, commercial, customer_rank, supplier_rank, tags, company_id,
                    active, city, ptype, created) -> dict:
    return {
        "id": pid, "name": name, "display_name": display, "email": email, "phone": phone,
        "vat": vat, "lang": lang, "country_id": country, "city": city, "is_company": is_company,
        "type": ptype,
        "parent_id": b.m2o(parent[0], parent[1]) if parent else False,
        "commercial_partner_id": b.m2o(commercial[0], commercial[1]),
        "customer_rank": customer_rank, "supplier_rank": supplier_rank, "category_id": tags,
        "company_id": b.m2o(company_id, "Nordwind Trading GmbH" if company_id == 1 else "Nordwind Trading Inc.")
        if company_id else False,
        "ref": False, "active": active, "create_date": created, "write_date": created,
    }


@dataclass
class _Customer:
    partner_id: int
    name: str
    country: str
    lang: str
    company_id: int  # our company that invoices it
    currency: str
    is_company: bool
    domain: str | None
    invoice_contact: int | None  # partner id of the "invoice" address child, if any
    contacts: list  # (partner_id, name, email, lang)
    reliability: float  # multiplies the chance an invoice is still unpaid
    tags: list
    active: bool
    weight: float


def _partners(b: _Builder, n_customers: int, company_partners: list[dict]):
    rng = b.rng
    countries = ["DE"] * 30 + ["AT"] * 6 + ["CH"] * 6 + ["FR"] * 10 + ["BE"] * 3 + ["NL"] * 5 \
        + ["GB"] * 10 + ["US"] * 26 + ["JP"] * 4
    partners = list(company_partners)
    customers: list[_Customer] = []
    used_names: set[str] = set()
    used_domains: set[str] = set()
    pid = 7
    vendors = max(2, n_customers // 25)
    start = b.as_of - timedelta(days=800)
    for k in range(n_customers + vendors):
        vendor = k >= n_customers
        country = rng.choice(countries)
        cid, cname, langs, tld, phone_prefix = COUNTRIES[country]
        lang = rng.choice(langs)
        family = lang[:2] if lang[:2] in _COMPANY_WORDS else "en"
        individual = not vendor and rng.random() < 0.08
        created_dt = _at(start + timedelta(days=int(k * 700 / (n_customers + vendors))),
                         rng.randrange(7 * 3600, 19 * 3600))
        created = odoo_datetime(created_dt)
        city = rng.choice(_CITIES[country])
        country_pair = b.m2o(cid, cname)
        our_company = 2 if country in ("US", "JP") or (country == "GB" and rng.random() < 0.3) else 1
        # Customers are shared between companies (company_id false) unless restricted.
        company_restrict = our_company if rng.random() < 0.15 else False
        if individual:
            first, last = _PEOPLE[family if family in _PEOPLE else "en"]
            name = f"{rng.choice(first)} {rng.choice(last)}"
            email = f"{_slug(name).replace('-', '.')}{rng.randrange(10, 99)}@" \
                    f"{rng.choice(['gmail.com', 'outlook.com', 'gmx.de', 'web.de', 'yahoo.fr'])}"
            rec = _partner_record(
                b, pid, name, display=name, email=email,
                phone=f"{phone_prefix} {rng.randrange(100, 999)} {rng.randrange(100000, 9999999)}",
                vat=False, lang=lang, country=country_pair, is_company=False, parent=None,
                commercial=(pid, name), customer_rank=rng.randrange(1, 20), supplier_rank=0,
                tags=[], company_id=company_restrict, active=rng.random() > 0.03, city=city,
                ptype="contact", created=created)
            partners.append(rec)
            customers.append(_Customer(pid, name, country, lang, our_company,
                                       _pick_currency(rng, our_company, country), False, None, None,
                                       [(pid, name, email, lang)], _reliability(rng), [],
                                       rec["active"], rng.paretovariate(1.6) * 0.3))
            pid += 1
            continue
        words = _COMPANY_WORDS[family]
        for attempt in itertools.count():
            base = f"{rng.choice(words[0])} {rng.choice(words[1])}"
            if attempt > 3:  # the word lists run out at thousands of customers: qualify the name
                base = f"{base} {city}" if attempt == 4 else f"{base} {k + 1}"
            name = f"{base} {rng.choice(words[2])}"
            slug = _slug(base)
            if name not in used_names and slug not in used_domains:
                break
        used_names.add(name)
        used_domains.add(slug)
        domain = f"{slug}.{tld}"
        tags = []
        if not vendor:
            r = rng.random()
            if r < 0.10:
                tags = [1]
            elif r < 0.17:
                tags = [2]
            elif r < 0.20:
                tags = [1, 2]
            elif r < 0.75:
                tags = [3]
            elif r < 0.82:
                tags = [4]
            elif r < 0.84:
                tags = [3, 5]
        active = vendor or rng.random() > 0.03
        vat = False if country in ("US", "JP") else \
            f"{'GB' if country == 'GB' else country}{rng.randrange(10**8, 10**9)}"
        email = f"info@{domain}"
        if rng.random() < 0.05:  # some CRMs keep addresses in odd case
            email = f"Info@{domain.capitalize()}"
        rec = _partner_record(
            b, pid, name, display=name, email=email,
            phone=f"{phone_prefix} {rng.randrange(10, 99)} {rng.randrange(100000, 9999999)}",
            vat=vat, lang=lang, country=country_pair, is_company=True, parent=None,
            commercial=(pid, name), customer_rank=0 if vendor else rng.randrange(1, 60),
            supplier_rank=rng.randrange(1, 10) if vendor else 0, tags=tags,
            company_id=company_restrict, active=active, city=city, ptype="contact",
            created=created)
        partners.append(rec)
        company_pid = pid
        pid += 1
        contacts = []
        invoice_contact = None
        # An accounts-payable mailbox (the "invoice" address) and one to three people.
        first, last = _PEOPLE[family if family in _PEOPLE else "en"]
        n_people = rng.choice([1, 1, 2, 2, 3])
        specs = []
        if rng.random() < 0.7:
            specs.append(("Accounts Payable", f"{_AP_MAILBOX.get(family, 'accounts.payable')}@{domain}", "invoice"))
        for _ in range(n_people):
            person = f"{rng.choice(first)} {rng.choice(last)}"
            local = _slug(person).replace("-", ".")
            addr = f"{local}@{domain}" if rng.random() > 0.06 else False
            specs.append((person, addr, "contact"))
        seen_emails = set()
        for person, addr, ptype in specs:
            if addr and addr in seen_emails:
                addr = addr.replace("@", f"{rng.randrange(2, 9)}@")
            if addr:
                seen_emails.add(addr)
            contact_active = active and rng.random() > 0.04
            c = _partner_record(
                b, pid, person, display=f"{name}, {person}", email=addr,
                phone=f"{phone_prefix} {rng.randrange(10, 99)} {rng.randrange(100000, 9999999)}"
                if rng.random() < 0.6 else False,
                vat=vat, lang=lang, country=country_pair, is_company=False,
                parent=(company_pid, name), commercial=(company_pid, name),
                customer_rank=0 if vendor else rng.randrange(0, 5), supplier_rank=0, tags=[],
                company_id=company_restrict, active=contact_active, city=city, ptype=ptype,
                created=created)
            partners.append(c)
            if ptype == "invoice":
                invoice_contact = pid
            if addr:
                contacts.append((pid, person, addr, lang))
            pid += 1
        if vendor:
            customers.append(_Customer(company_pid, name, country, lang, our_company, "EUR", True,
                                       domain, None, contacts, 1.0, [], active, -1.0))
            continue
        customers.append(_Customer(company_pid, name, country, lang, our_company,
                                   _pick_currency(rng, our_company, country), True, domain,
                                   invoice_contact, contacts, _reliability(rng), tags, active,
                                   rng.paretovariate(1.3) * (3.0 if 1 in tags else 1.0)))
    return partners, customers


def _pick_currency(rng: random.Random, company_id: int, country: str) -> str:
    if company_id == 1:
        home = {"CH": "CHF", "GB": "GBP", "US": "USD"}.get(country, "EUR")
        return home if rng.random() < 0.85 else rng.choice(["EUR", "USD", "GBP", "CHF"])
    if country == "JP":
        return "JPY"
    return "USD" if rng.random() < 0.85 else rng.choice(["EUR", "GBP", "JPY"])


def _reliability(rng: random.Random) -> float:
    r = rng.random()
    return 0.6 if r < 0.7 else (1.4 if r < 0.92 else 2.6)


# Share of invoices still not paid / partly paid / in payment, by days overdue at as_of.
_PAYMENT_PROFILE = [  # (min days overdue, p_not_paid, p_partial, p_in_payment)
    (91, 0.13, 0.06, 0.01),
    (61, 0.16, 0.07, 0.02),
    (31, 0.24, 0.08, 0.03),
    (1, 0.42, 0.08, 0.05),
    (-10_000, 0.72, 0.05, 0.03),
]


def _journal(company_id: int, move_type: str) -> str:
    us = company_id == 2
    return {"out_invoice": "INVUS" if us else "INV", "out_refund": "RINVUS" if us else "RINV",
            "in_invoice": "BILLUS" if us else "BILL", "entry": "MISCUS" if us else "MISC"}[move_type]


def _move_name(seq: dict, company_id: int, move_type: str, day: date) -> str:
    journal = _journal(company_id, move_type)
    if move_type in ("in_invoice", "entry"):  # monthly sequences, as Odoo 17 numbers bills
        key = (journal, day.year, day.month)
        seq[key] = seq.get(key, 0) + 1
        return f"{journal}/{day.year}/{day.month:02d}/{seq[key]:04d}"
    key = (journal, day.year)
    seq[key] = seq.get(key, 0) + 1
    return f"{journal}/{day.year}/{seq[key]:05d}"


def _ri(rng: random.Random, low: int, high: int) -> int:
    """A random integer in [low, high]; cheaper than randint (called millions of times)."""
    return low + int(rng.random() * (high - low + 1))


def _amount_minor(rng: random.Random, currency: str) -> int:
    major = min(250_000.0, max(40.0, rng.lognormvariate(7.0, 1.15)))
    if currency == "JPY":
        return int(major * 150)
    r = rng.random()
    cents = 0 if r < 0.6 else (50 if r < 0.8 else int(r * 10_000) % 100)
    return int(major) * 100 + cents


class _MoveFactory:
    """Builds Odoo-shaped account.move dicts; shared by generation and advance_night."""

    def __init__(self, b: _Builder, companies: list[dict], partners_by_id: dict):
        self.b = b
        self.company_pair = {c["id"]: b.m2o(c["id"], c["name"]) for c in companies}
        self.company_currency = {c["id"]: c["currency_id"][1] for c in companies}
        self.currency_pair = {code: b.m2o(row[0], code) for code, row in CURRENCY_BY_CODE.items()}
        self.partner_pair = {pid: b.m2o(pid, p["display_name"]) for pid, p in partners_by_id.items()}
        self.term_pair = {tid: b.m2o(tid, name) for tid, (name, _d) in PAYMENT_TERMS.items()}
        # Payments and applied credit notes: collected while the ledger is generated (its
        # instalment terms are set afterwards), then written as reconciliations; once
        # `partials` is the dataset's list, each one is reconciled as it happens.
        self.events: list[tuple[int, int, int, dict | None]] = []  # (epoch s, move id, minor units, credit note)
        self.partials: list[dict] | None = None

    def build(self, *, move_id, name, move_type, state, payment_state, partner_id, commercial_id,
              company_id, currency, invoice_date, due, term_id, total_minor, residual_minor,
              create_ts, write_ts, ref=False, origin=False, reversed_entry=False) -> dict:
        # 21 stored keys keep a dict small (a million of them); `date`, `display_name`,
        # `company_currency_id`, `payment_reference` and the untaxed/tax amounts are derived by
        # the Odoo server (see odoo_server.MOVE_COMPUTED), as Odoo computes them.
        dec = CURRENCY_BY_CODE[currency][3]
        company_cur = self.company_currency[company_id]
        company_dec = CURRENCY_BY_CODE[company_cur][3]
        sign = -1 if move_type in ("out_refund", "in_invoice", "in_refund") else 1
        return {
            "id": move_id,
            "name": name,
            "move_type": move_type,
            "state": state,
            "payment_state": payment_state,
            "partner_id": self.partner_pair[partner_id] if partner_id else False,
            "commercial_partner_id": self.partner_pair[commercial_id] if commercial_id else False,
            "company_id": self.company_pair[company_id],
            "currency_id": self.currency_pair[currency],
            "invoice_date": date_text(invoice_date) if invoice_date else False,
            "invoice_date_due": date_text(due) if due else False,
            "invoice_payment_term_id": self.term_pair[term_id] if term_id else False,
            "amount_total": minor_to_float(total_minor, dec),
            "amount_residual": minor_to_float(residual_minor, dec),
            "amount_total_signed": minor_to_float(
                sign * convert_minor(total_minor, currency, company_cur), company_dec),
            "amount_residual_signed": minor_to_float(
                sign * convert_minor(residual_minor, currency, company_cur), company_dec),
            "invoice_origin": origin,
            "ref": ref,
            "reversed_entry_id": reversed_entry,
            "create_date": odoo_ts(create_ts),
            "write_date": odoo_ts(write_ts),
        }


def _moves(b: _Builder, n: int, customers: list[_Customer], partners: list[dict],
           companies: list[dict]):
    rng = b.rng
    as_of = b.as_of
    partners_by_id = {p["id"]: p for p in partners}
    factory = _MoveFactory(b, companies, partners_by_id)
    buyers = [c for c in customers if c.weight > 0]
    vendors = [c for c in customers if c.weight < 0]
    cum = list(itertools.accumulate(c.weight for c in buyers))
    term_days = [(tid, d) for tid, (_n, d) in PAYMENT_TERMS.items()]
    # 1) plan every move: (created datetime, kind, state, customer, due, term, ref to invoice plan)
    n_refunds = n // 20
    chosen = rng.choices(buyers, cum_weights=cum, k=n - n_refunds)
    plans = []
    terms_for = {off: [t for t in term_days if t[1] >= off] or [(10, 60)] for off in range(-120, 31)}
    for cust in chosen:
        r = rng.random()
        if r < 0.035 and vendors:
            kind = "in_invoice"
        elif r < 0.045:
            kind = "entry"
        else:
            kind = "out_invoice"
        due_offset = _ri(rng, -120, 30)
        due = as_of + timedelta(days=due_offset)
        if rng.random() < 0.06:  # no payment term: a due date typed by hand
            term_id, days = False, max(rng.choice([10, 14, 30]), due_offset)
        else:
            options = terms_for[due_offset]
            term_id, days = options[int(rng.random() * len(options))]
        invoice_date = due - timedelta(days=days)
        state_r = rng.random()
        state = "draft" if state_r < 0.025 else ("cancel" if state_r < 0.035 else "posted")
        if state == "draft" and invoice_date < as_of - timedelta(days=20) and rng.random() < 0.7:
            state = "posted"  # old drafts are rare: most drafts are recent
        created = day_epoch(invoice_date) + _ri(rng, 7 * 3600, 19 * 3600)
        plans.append([created, kind, state, cust, due, term_id, None])
    invoice_plans = [p for p in plans if p[1] == "out_invoice" and p[2] == "posted"]
    for inv_plan in rng.sample(invoice_plans, min(n_refunds, len(invoice_plans))):
        inv_created = inv_plan[0]
        inv_day = ts_date(inv_created)
        latest = max(inv_day, min(as_of, inv_day + timedelta(days=60)))
        day = inv_day + timedelta(days=rng.randint(0, (latest - inv_day).days))
        created = max(day_epoch(day) + rng.randrange(7 * 3600, 19 * 3600), inv_created + 300)
        plans.append([created, "out_refund", "posted", inv_plan[3], None, False, inv_plan])
    # Odoo numbers moves in date order when a batch is posted: sort the plans, then build.
    plans.sort(key=lambda p: p[0])  # stable: equal seconds keep their planning order
    b.progress(f"  {len(plans)} moves planned; numbering in date order")
    seq: dict = {"_next_move_id": 1}
    moves: list[dict] = []
    built: dict[int, dict] = {}  # id(plan) -> move
    po_counter = itertools.count(40_000 + rng.randrange(5000))
    so_counter = itertools.count(1000 + rng.randrange(500))
    report_every = max(1, len(plans) // 10)
    now_ts = int(b.now.timestamp())
    latest_write = now_ts - 300
    latest_create = now_ts - 600
    for i, plan in enumerate(plans):
        if i and i % report_every == 0:
            b.progress(f"  {i} / {len(plans)} moves")
        create_ts, kind, state, cust, due, term_id, inv_plan = plan
        if create_ts > latest_create:
            create_ts = latest_create
        if kind == "out_refund":
            inv = built[id(inv_plan)]
            _credit_note(factory, seq, moves, inv, rng, when=create_ts)
            continue
        invoice_date = ts_date(create_ts)
        move_id = seq["_next_move_id"]
        seq["_next_move_id"] += 1
        if kind == "in_invoice":
            vendor = rng.choice(vendors)
            company_id = vendor.company_id
            currency = factory.company_currency[company_id]
            partner_id = commercial = vendor.partner_id
        elif kind == "entry":
            company_id = rng.choice([1, 2])
            currency = factory.company_currency[company_id]
            partner_id = commercial = False
            term_id, due = False, False
        else:
            company_id = cust.company_id
            currency = cust.currency if rng.random() < 0.9 else factory.company_currency[company_id]
            commercial = cust.partner_id
            partner_id = cust.invoice_contact if cust.invoice_contact and rng.random() < 0.35 else commercial
        total = _amount_minor(rng, currency)
        residual = total
        payment_state = "not_paid"
        write_ts = create_ts
        invoice_date_out, due_out = invoice_date, due
        if state == "draft":
            name = "/"
            if rng.random() < 0.3:  # drafts often have no invoice date yet
                invoice_date_out, due_out = None, None
        else:
            name = _move_name(seq, company_id, kind, invoice_date)
            if state == "cancel":
                write_ts = create_ts + 3600 * _ri(rng, 1, 24 * 5)
                if rng.random() < 0.4:
                    name = "/"  # cancelled while still a draft
            elif kind in ("out_invoice", "in_invoice"):
                payment_state, residual, write_ts = _payment(rng, as_of, invoice_date, due, total,
                                                             cust.reliability, create_ts)
        if write_ts > latest_write:
            write_ts = now_ts - 60 * _ri(rng, 5, 600)
        if write_ts < create_ts:
            write_ts = create_ts
        origin = f"S{next(so_counter):05d}" if kind == "out_invoice" and rng.random() < 0.6 else False
        ref = f"PO-{next(po_counter)}" if kind == "out_invoice" and rng.random() < 0.4 else False
        if kind == "in_invoice":
            ref = str(_ri(rng, 10**6, 10**7 - 1))
        move = factory.build(
            move_id=move_id, name=name, move_type=kind, state=state, payment_state=payment_state,
            partner_id=partner_id, commercial_id=commercial, company_id=company_id,
            currency=currency, invoice_date=invoice_date_out, due=due_out, term_id=term_id,
            total_minor=total, residual_minor=residual, create_ts=create_ts, write_ts=write_ts,
            ref=ref, origin=origin)
        moves.append(move)
        built[id(plan)] = move
        if kind == "out_invoice" and residual < total:
            factory.events.append((write_ts, move_id, total - residual, None))
    b.progress(f"  {len(moves)} moves ready")
    seq["_factory"] = factory
    return moves, seq


def _payment(rng, as_of, invoice_date, due, total, reliability, create_ts):
    """The payment state of an invoice at as_of: (payment_state, residual minor, write epoch seconds)."""
    overdue = (as_of - due).days
    for profile in _PAYMENT_PROFILE:
        if overdue >= profile[0]:
            break
    _, p_open, p_partial, p_in_payment = profile
    p_open = min(0.9, p_open * reliability)
    r = rng.random()
    if r < p_open:
        return "not_paid", total, create_ts
    latest = min(as_of, due + timedelta(days=max(0, overdue - 1)))
    span = max(0, (latest - invoice_date).days)
    pay_ts = day_epoch(invoice_date) + 86400 * _ri(rng, 0, span) + _ri(rng, 6 * 3600, 20 * 3600)
    if r < p_open + p_partial:
        residual = max(1, min(total - 1, int(total * rng.uniform(0.15, 0.85))))
        return "partial", residual, pay_ts
    if r < p_open + p_partial + p_in_payment:
        day = max(as_of - timedelta(days=_ri(rng, 0, 3)), invoice_date)
        return "in_payment", 0, day_epoch(day) + _ri(rng, 6 * 3600, 20 * 3600)
    return "paid", 0, pay_ts


def _credit_note(factory: _MoveFactory, seq: dict, moves: list[dict], inv: dict,
                 rng: random.Random, *, when: int, full: bool | None = None) -> dict:
    """Issue a credit note for `inv` at `when` (epoch seconds), reconciled with `inv` when it may."""
    currency = inv["currency_id"][1]
    dec = CURRENCY_BY_CODE[currency][3]
    company_id = inv["company_id"][0]
    inv_total = round(inv["amount_total"] * 10 ** dec)
    inv_residual = round(inv["amount_residual"] * 10 ** dec)
    day = ts_date(when)
    if full is None:
        full = rng.random() < 0.45 and inv["payment_state"] == "not_paid"
    amount = inv_total if full else max(1, int(inv_total * rng.uniform(0.05, 0.4)))
    # A partial credit note is either reconciled with the invoice (it lowers its residual) or
    # left open, to be netted against the customer's balance.
    reconciled = full or (inv["payment_state"] in ("not_paid", "partial") and amount < inv_residual
                          and rng.random() < 0.5)
    move_id = seq["_next_move_id"]
    seq["_next_move_id"] += 1
    refund = factory.build(
        move_id=move_id, name=_move_name(seq, company_id, "out_refund", day), move_type="out_refund",
        state="posted", payment_state="paid" if reconciled else "not_paid",
        partner_id=inv["partner_id"][0], commercial_id=inv["commercial_partner_id"][0],
        company_id=company_id, currency=currency, invoice_date=day, due=day, term_id=False,
        total_minor=amount, residual_minor=0 if reconciled else amount, create_ts=when,
        write_ts=when, ref=f"Reversal of: {inv['name']}",
        reversed_entry=factory.b.m2o(inv["id"], inv["name"]))
    moves.append(refund)
    if reconciled:
        new_residual = 0 if full else inv_residual - amount
        state = "reversed" if full else ("partial" if new_residual > 0 else "paid")
        _set_payment(factory, inv, state, new_residual, when, credit_note=refund)
    return refund


def _set_payment(factory: _MoveFactory, move: dict, payment_state: str, residual_minor: int,
                 when: int, credit_note: dict | None = None) -> None:
    """Set a move's payment state and residual; what the residual went down by was paid (or
    settled by `credit_note`) at `when`, which a customer invoice records as reconciliations."""
    currency = move["currency_id"][1]
    company_cur = factory.company_currency[move["company_id"][0]]
    sign = -1 if move["move_type"] in ("out_refund", "in_invoice") else 1
    before = round(move["amount_residual"] * 10 ** CURRENCY_BY_CODE[currency][3])
    if move["move_type"] == "out_invoice" and residual_minor < before:
        if factory.partials is None:
            factory.events.append((when, move["id"], before - residual_minor, credit_note))
        else:
            _reconcile(factory, move, before, residual_minor, when, credit_note)
    move["payment_state"] = payment_state
    move["amount_residual"] = minor_to_float(residual_minor, CURRENCY_BY_CODE[currency][3])
    move["amount_residual_signed"] = minor_to_float(
        sign * convert_minor(residual_minor, currency, company_cur), CURRENCY_BY_CODE[company_cur][3])
    move["write_date"] = max(move["write_date"], odoo_ts(when))


# ---------------------------------------------------------------------------------------------
# Shapes of real ledgers: instalments, blocked payments, numbers unique per company only
# ---------------------------------------------------------------------------------------------

def _seed_key(seed) -> int:
    return zlib.crc32(str(seed).encode())


def _unit(key: int, record_id: int, salt: int) -> float:
    """A number in [0, 1) fixed by the seed, the record and the purpose: these shapes draw nothing
    from the generator's random stream, so every other record stays as it was."""
    return zlib.crc32(f"{key}:{salt}:{record_id}".encode()) / 2**32


def _maybe_instalments(b: _Builder, seed, move: dict, key: int | None = None) -> None:
    """Give a share of the invoices on a 30, 45 or 60 day term a term of several instalments
    whose last one falls on the same day: `invoice_date_due` stays the last instalment's date."""
    term = move["invoice_payment_term_id"]
    if move["move_type"] != "out_invoice" or not term or term[0] not in PAYMENT_TERMS:
        return
    days = PAYMENT_TERMS[term[0]][1]
    key = _seed_key(seed) if key is None else key
    for tid, (name, base_days, _parts) in INSTALMENT_TERMS.items():
        if base_days == days and _unit(key, move["id"], 1) < INSTALMENT_SHARE:
            move["invoice_payment_term_id"] = b.m2o(tid, name)


def _real_ledger_shapes(b: _Builder, seed, moves: list[dict]) -> None:
    """Instalment terms, `blocked` invoices (Odoo 18's "block payment": still owed) and
    company-2 invoices whose number a company-1 invoice also has (names are unique per journal,
    so per company)."""
    key = _seed_key(seed)
    for m in moves:
        _maybe_instalments(b, seed, m, key)
    reversed_ids = {m["reversed_entry_id"][0] for m in moves if m.get("reversed_entry_id")}

    def open_invoice(m, company):
        return (m["move_type"] == "out_invoice" and m["state"] == "posted" and m["company_id"][0] == company
                and m["payment_state"] in ("not_paid", "partial") and m["id"] not in reversed_ids)

    first = {m["name"]: m for m in moves if open_invoice(m, 1)}
    shared = []
    for m in moves:
        if len(shared) >= SHARED_NUMBERS:
            break
        if not open_invoice(m, 2):
            continue
        twin = first.get("INV/" + m["name"].split("/", 1)[1])
        if twin is not None and twin["commercial_partner_id"] != m["commercial_partner_id"]:
            m["name"] = twin["name"]  # company 2's own "INV" journal
            shared.append(m["id"])
    candidates = [m for m in moves if m["move_type"] == "out_invoice" and m["state"] == "posted"
                  and m["payment_state"] in ("not_paid", "partial") and m["id"] not in shared]
    blocked = [m for m in candidates if _unit(key, m["id"], 2) < BLOCKED_SHARE] or candidates[:1]
    for m in blocked:
        m["payment_state"] = "blocked"


def instalment_parts(move: dict) -> tuple[tuple[int, int, int], ...]:
    """(share numerator, denominator, days from the invoice date) of each instalment of a move."""
    term = move.get("invoice_payment_term_id")
    spec = INSTALMENT_TERMS.get(term[0]) if term else None
    return spec[2] if spec else ((1, 1, 0),)


def _split(total: int, parts) -> list[int]:
    """A total (minor units) into the instalments' shares, rounded half up; the last takes the rest."""
    out = [(2 * total * num + den) // (2 * den) for num, den, _d in parts[:-1]]
    return [*out, total - sum(out)]


def _oldest_first(amounts: list[int], paid: int) -> list[int]:
    """What is left open of each instalment when `paid` was applied oldest first, as Odoo reconciles."""
    out = []
    for amount in amounts:
        used = min(amount, max(0, paid))
        paid -= used
        out.append(amount - used)
    return out


def _line_count(move: dict) -> int:
    """How many receivable lines a move has (none: not a customer move, or no date or amount yet)."""
    if (move["move_type"] not in ("out_invoice", "out_refund") or move["amount_total"] is False
            or not (move["invoice_date_due"] or move["invoice_date"])):
        return 0
    return len(instalment_parts(move))


def _open_instalments(move: dict, residual: int, cresidual: int, dec: int, cdec: int):
    """(amounts, company amounts, open, company open) per instalment of a customer move whose
    residual is `residual` (invoice currency) / `cresidual` (company currency), minor units."""
    parts = instalment_parts(move)
    total = round(abs(move["amount_total"]) * 10 ** dec)
    ctotal = round(abs(move["amount_total_signed"]) * 10 ** cdec)
    amounts, camounts = _split(total, parts), _split(ctotal, parts)
    open_ = _oldest_first(amounts, total - residual)
    copen = [0 if o == 0 else c for o, c in zip(open_, camounts, strict=True)]
    partly = [i for i, o in enumerate(open_) if 0 < o < amounts[i]]
    still_open = [i for i, o in enumerate(open_) if o]
    if still_open:  # the company-currency rest (rounding of the rate) sits on the first open one
        at = partly[0] if partly else still_open[0]
        copen[at] += cresidual - sum(copen)
    return amounts, camounts, open_, copen


# Ids of the payments' own receivable lines (the credit side of their reconciliations): far
# above any invoice line id (move id * LINE_IDS_PER_MOVE).
PAYMENT_LINE_BASE = 10**12


def _reconcile(factory: _MoveFactory, move: dict, before: int, after: int, when: int,
               credit_note: dict | None) -> None:
    """Record what a payment (or `credit_note`) of `before - after` minor units, made at `when`,
    settled of each receivable line of the customer invoice `move`, as Odoo does: one
    account.partial.reconcile per line, oldest instalment first, its `amount` in company
    currency, `max_date` the later of the two lines' dates. The lines' residuals then equal
    their balance minus their reconciliations, in both currencies."""
    currency = move["currency_id"][1]
    company_code = factory.company_currency[move["company_id"][0]]
    dec, cdec = CURRENCY_BY_CODE[currency][3], CURRENCY_BY_CODE[company_code][3]
    cbefore, cafter = convert_minor(before, currency, company_code), convert_minor(after, currency, company_code)
    if len(instalment_parts(move)) == 1:  # most moves: the one line holds the move's residual
        open_before, copen_before, open_after, copen_after = [before], [cbefore], [after], [cafter]
    else:
        _a, _c, open_before, copen_before = _open_instalments(move, before, cbefore, dec, cdec)
        _a, _c, open_after, copen_after = _open_instalments(move, after, cafter, dec, cdec)
    partials = factory.partials
    first_id = len(partials) + 1
    day = ts_date(when)
    if move["invoice_date"] and move["invoice_date"] > date_text(day):
        day = date.fromisoformat(move["invoice_date"])
    if credit_note is not None:
        counterpart = [credit_note["id"] * LINE_IDS_PER_MOVE + 1, credit_note["name"]]
    else:
        counterpart = [PAYMENT_LINE_BASE + first_id, f"PBNK1/{day.year}/{first_id:05d}"]
    several = len(open_before) > 1
    stamp = odoo_ts(when)
    for k, (o1, o2, c1, c2) in enumerate(zip(open_before, open_after, copen_before, copen_after, strict=True)):
        if o1 == o2 and c1 == c2:
            continue
        paid = minor_to_float(o1 - o2, dec)
        partials.append({
            "id": len(partials) + 1,
            "debit_move_id": [move["id"] * LINE_IDS_PER_MOVE + k + 1,
                              f"{move['name']} installment #{k + 1}" if several else move["name"]],
            "credit_move_id": counterpart,
            "amount": minor_to_float(c1 - c2, cdec),
            "debit_amount_currency": paid,
            "credit_amount_currency": paid,
            "debit_currency_id": move["currency_id"],
            "credit_currency_id": move["currency_id"],
            "company_id": move["company_id"],
            "company_currency_id": factory.currency_pair[company_code],
            "full_reconcile_id": False,
            "max_date": date_text(day),
            "account_type": "asset_receivable",  # of both lines: a domain may filter on it
            "create_date": stamp,
            "write_date": stamp,
        })


def _replay_payments(factory: _MoveFactory, moves: list[dict]) -> list[dict]:
    """The reconciliations of the generated ledger: its payments and applied credit notes in
    the order they happened, on the instalments the moves have now."""
    by_id = {m["id"]: m for m in moves}
    factory.partials = partials = []
    residual: dict[int, int] = {}
    for when, move_id, paid, credit_note in sorted(factory.events, key=lambda e: (e[0], e[1])):
        move = by_id[move_id]
        before = residual.get(move_id)
        if before is None:
            before = round(abs(move["amount_total"]) * 10 ** CURRENCY_BY_CODE[move["currency_id"][1]][3])
        residual[move_id] = before - paid
        _reconcile(factory, move, before, before - paid, when, credit_note)
    factory.events = []
    return partials


def receivable_lines(move: dict, company_currency: dict[int, list]) -> list[dict]:
    """The receivable lines (display_type payment_term) of a customer move, one per instalment,
    in Odoo's shape; residuals follow the move's (oldest instalment paid first), so they are
    consistent with it after any payment. `company_currency`: company id -> currency many2one."""
    if not _line_count(move):
        return []
    due_text = move["invoice_date_due"] or move["invoice_date"]
    parts = instalment_parts(move)
    due = date.fromisoformat(due_text)
    company = move["company_id"][0]
    cur_pair = company_currency[company]
    dec = CURRENCY_BY_CODE[move["currency_id"][1]][3]
    cdec = CURRENCY_BY_CODE[cur_pair[1]][3]
    amounts, camounts, open_, copen = _open_instalments(
        move, round(abs(move["amount_residual"]) * 10 ** dec),
        round(abs(move["amount_residual_signed"]) * 10 ** cdec), dec, cdec)
    sign = -1 if move["move_type"] == "out_refund" else 1
    account = RECEIVABLE_ACCOUNTS[company]
    lines = []
    for k, (_num, _den, days) in enumerate(parts):
        maturity = due - timedelta(days=parts[-1][2] - days)
        balance = minor_to_float(sign * camounts[k], cdec)
        lines.append({
            "id": move["id"] * LINE_IDS_PER_MOVE + k + 1,
            "move_id": [move["id"], move["name"] or "/"],
            "move_name": move["name"],
            "name": move["name"] if len(parts) == 1 else f"{move['name']} installment #{k + 1}",
            "move_type": move["move_type"],
            "parent_state": move["state"],
            "company_id": move["company_id"],
            "company_currency_id": cur_pair,
            "currency_id": move["currency_id"],
            "partner_id": move["commercial_partner_id"],
            "account_id": [account[0], account[1]],
            "account_type": "asset_receivable",
            "display_type": "payment_term",
            "date": move["invoice_date"] or False,
            "date_maturity": date_text(maturity),
            "balance": balance,
            "debit": balance if sign > 0 else 0.0,
            "credit": -balance if sign < 0 else 0.0,
            "amount_currency": minor_to_float(sign * amounts[k], dec),
            "amount_residual": minor_to_float(sign * copen[k], cdec),
            "amount_residual_currency": minor_to_float(sign * open_[k], dec),
            "reconciled": open_[k] == 0 and copen[k] == 0,
            "create_date": move["create_date"],
            "write_date": move["write_date"],
        })
    return lines


class ReceivableLines(Sequence):
    """Every customer move's receivable lines in id order, each built when it is read (a million
    moves would otherwise hold over a million line dicts); reflects the moves as they were when
    this view was made (the servers make one per request, or per data version at large sizes)."""

    def __init__(self, data: SandboxData):
        self._moves = data.moves
        self._currency = {c["id"]: c["currency_id"] for c in data.companies}
        self._index = array.array("q")  # move position * LINE_IDS_PER_MOVE + line position
        for pos, move in enumerate(self._moves):
            self._index.extend(pos * LINE_IDS_PER_MOVE + k for k in range(_line_count(move)))
        self._last: tuple[int, list[dict]] = (-1, [])  # one move's lines: pages read them in a row

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        pos, k = divmod(self._index[i], LINE_IDS_PER_MOVE)
        last = self._last  # read once: the servers answer requests from several threads
        if last[0] != pos:
            last = self._last = (pos, receivable_lines(self._moves[pos], self._currency))
        return last[1][k]


def all_receivable_lines(data: SandboxData) -> list[dict]:
    """Every customer move's receivable lines, in id order (the servers derive them on read)."""
    return list(ReceivableLines(data))


# ---------------------------------------------------------------------------------------------
# Zendesk
# ---------------------------------------------------------------------------------------------

_AGENTS = [
    ("Anna Schmidt", f"anna.schmidt@{COMPANY_DOMAIN}", "agent"),
    ("Tom Becker", f"tom.becker@{COMPANY_DOMAIN}", "agent"),
    ("Claire Martin", f"claire.martin@{COMPANY_DOMAIN}", "agent"),
    ("Raj Patel", f"raj.patel@{COMPANY_DOMAIN}", "agent"),
    ("Finance Bot", ZENDESK_ADMIN_EMAIL, "admin"),
]

_TEXTS = {
    "en": {
        "copy": ("Copy of invoice {inv}",
                 "Hello,\n\ncould you please resend invoice {inv} to our accounts payable address? "
                 "We cannot find it in our system.\n\nThanks,\n{name}"),
        "dispute": ("Dispute: invoice {inv} amount incorrect",
                    "Hello,\n\nwe dispute invoice {inv}: the quantities billed do not match the "
                    "delivery note. Please send a corrected invoice or a credit note. We will not "
                    "pay this invoice until it is corrected.\n\nRegards,\n{name}"),
        "dispute_quiet": ("Question about your last invoice",
                          "Hi,\n\nthe price on {inv} is not what we agreed in the contract. "
                          "Please check.\n\n{name}"),
        "promise": ("Payment of {inv}",
                    "Hello,\n\nthank you for the reminder. We will pay {inv} by {date}.\n\n"
                    "Best regards,\n{name}"),
        "paid": ("Remittance advice {inv}",
                 "Hello,\n\nwe paid invoice {inv} on {date} by bank transfer. Please check and "
                 "update your records.\n\n{name}"),
        "reminder": ("Re: Payment reminder {inv}",
                     "Hello,\n\nwe received your reminder for {inv}. It is in our approval "
                     "workflow.\n\n{name}"),
    },
    "de": {
        "copy": ("Rechnungskopie {inv}",
                 "Guten Tag,\n\nbitte senden Sie uns die Rechnung {inv} erneut zu.\n\n"
                 "Mit freundlichen Grüßen\n{name}"),
        "dispute": ("Widerspruch Rechnung {inv}",
                    "Sehr geehrte Damen und Herren,\n\nwir widersprechen der Rechnung {inv}, da die "
                    "berechneten Mengen nicht dem Lieferschein entsprechen. Bitte senden Sie uns "
                    "eine Gutschrift.\n\nMit freundlichen Grüßen\n{name}"),
        "dispute_quiet": ("Rückfrage zur Rechnung",
                          "Hallo,\n\nder Preis auf {inv} entspricht nicht dem Angebot.\n\n{name}"),
        "promise": ("Zahlung {inv}",
                    "Guten Tag,\n\nwir werden die Rechnung {inv} bis zum {date_de} bezahlen "
                    "(we will pay by {date}).\n\nMit freundlichen Grüßen\n{name}"),
        "paid": ("Zahlungsavis {inv}",
                 "Guten Tag,\n\ndie Rechnung {inv} wurde am {date_de} überwiesen.\n\n{name}"),
        "reminder": ("AW: Zahlungserinnerung {inv}",
                     "Guten Tag,\n\nIhre Erinnerung zu {inv} ist bei uns in der Freigabe.\n\n{name}"),
    },
}
_GENERAL = [
    ("Delivery delayed for order {so}", "Our order {so} has not arrived yet. When can we expect it?"),
    ("Change of billing address", "Please note our new billing address from next month on."),
    ("Login problem on the customer portal", "I cannot log in to the portal since yesterday."),
    ("Question about product specifications", "Can you send us the data sheet for the item?"),
    ("New bank details", "Please find attached our new bank details."),
    ("Quote request", "We would like a quote for 200 units."),
]
_AGENT_REPLIES = [
    "Thank you for your message. We are looking into it and will get back to you shortly.",
    "Thanks, we have forwarded this to our accounting team.",
    "We have attached the requested document. Let us know if anything is missing.",
]
_NOTES = [
    "Checked with sales: the customer is right about the price, credit note in preparation.",
    "Called the customer, payment approved on their side.",
    "Escalated to the key account manager.",
]
_CUSTOMER_REPLIES = [
    "Thank you, we are waiting for your answer.",
    "Any news on this? Our payment run is on Friday.",
    "Thanks, received.",
]


class _ZendeskIds:
    def __init__(self, rng: random.Random):
        self.user = itertools.count(361_000_000_000 + rng.randrange(10**6), 7919)
        self.org = itertools.count(360_000_000_000 + rng.randrange(10**6), 1021)
        self.comment = itertools.count(30_000_000_000_000 + rng.randrange(10**6), 97)


def _user(uid, name, email, role, org_id, locale, created_dt, external_id=None) -> dict:
    return {
        "id": uid, "url": f"/api/v2/users/{uid}.json", "name": name, "email": email,
        "created_at": zendesk_datetime(created_dt), "updated_at": zendesk_datetime(created_dt),
        "time_zone": "Berlin" if locale.startswith("de") else "UTC",
        "iana_time_zone": "Europe/Berlin" if locale.startswith("de") else "Etc/UTC",
        "phone": None, "locale": locale, "organization_id": org_id, "role": role,
        "verified": True, "external_id": external_id, "tags": [], "active": True,
        "suspended": False, "shared": False, "details": "", "notes": "",
    }


def _zendesk(b: _Builder, n_tickets: int, customers: list[_Customer], moves: list[dict]):
    rng = b.rng
    ids = _ZendeskIds(rng)
    start = b.as_of - timedelta(days=700)
    orgs, users = [], []
    by_email: dict[str, dict] = {}
    requesters = []  # (user, customer)
    for k, cust in enumerate(customers):
        if cust.weight < 0:
            continue
        created = _at(start + timedelta(days=k * 500 // max(1, len(customers))),
                      rng.randrange(8 * 3600, 18 * 3600))
        org_id = None
        if cust.is_company:
            org_id = next(ids.org)
            orgs.append({
                "id": org_id, "url": f"/api/v2/organizations/{org_id}.json", "name": cust.name,
                "domain_names": [cust.domain], "external_id":
                    f"odoo-partner-{cust.partner_id}" if rng.random() < 0.5 else None,
                "details": "", "notes": "", "group_id": None, "shared_tickets": False,
                "shared_comments": False, "tags": [], "organization_fields": {},
                "created_at": zendesk_datetime(created), "updated_at": zendesk_datetime(created),
            })
        locale = {"de": "de", "fr": "fr", "nl": "nl", "ja": "ja"}.get(cust.lang[:2], "en-US")
        for _pid, name, email, _lang in cust.contacts:
            key = email.lower()
            if key in by_email:
                continue
            u = _user(next(ids.user), name, email, "end-user", org_id, locale,
                      created + timedelta(hours=rng.randrange(1, 200)))
            by_email[key] = u
            users.append(u)
            requesters.append((u, cust))
    agents = []
    for name, email, role in _AGENTS:
        u = _user(next(ids.user), name, email, role, None, "en-US", _at(start, 8 * 3600))
        users.append(u)
        agents.append(u)
    strays = []
    for k in range(max(2, len(requesters) // 20)):
        email = f"{rng.choice(['newsletter', 'john.doe', 'procurement', 'noreply'])}{k}@" \
                f"{rng.choice(['gmail.com', 'example.org', 'mailer.io'])}"
        u = _user(next(ids.user), email.split("@")[0].replace(".", " ").title(), email,
                  "end-user", None, "en-US", _at(start + timedelta(days=rng.randrange(600)), 40000))
        users.append(u)
        strays.append(u)
    users.sort(key=lambda u: u["id"])
    # Invoices a customer could write about, per commercial partner.
    invoices_of: dict[int, list[dict]] = {}
    for m in moves:
        if m["move_type"] == "out_invoice" and m["state"] == "posted":
            invoices_of.setdefault(m["commercial_partner_id"][0], []).append(m)
    tickets: list[dict] = []
    comments: dict[int, list[dict]] = {}
    gen = _TicketGen(b, ids, agents, invoices_of, requesters, strays, tickets, comments)
    # Ticket ids grow with creation time, as in a real account.
    created = sorted(b.now - timedelta(seconds=rng.randrange(3600, 150 * 86400)) for _ in range(n_tickets))
    for when in created:
        gen.new_ticket(created=when)
    if len(tickets) >= 5 and not any(t["status"] == "deleted" for t in tickets):
        _scrub(rng.choice([t for t in tickets if t["status"] in ("solved", "closed")] or tickets))
    # The shapes of real accounts and the named scenarios, from their own random source so the
    # ordinary records above stay as they were.
    srng = _FastRandom(int(rng.random() * 2 ** 32))
    _odd_shapes(b, srng, ids, users, tickets, comments, requesters)
    scenarios = _zendesk_scenarios(b, srng, ids, users, agents, requesters, invoices_of, tickets, comments)
    users.sort(key=lambda u: u["id"])
    return orgs, users, tickets, comments, scenarios


class _TicketGen:
    """Creates tickets (with their comment threads) for generation and for advance_night."""

    def __init__(self, b, ids, agents, invoices_of, requesters, strays, tickets, comments):
        self.b, self.ids, self.agents = b, ids, agents
        self.invoices_of, self.requesters, self.strays = invoices_of, requesters, strays
        self.tickets, self.comments = tickets, comments
        self.so = itertools.count(2000)

    def _pick_invoice(self, partner_id, created: datetime) -> dict | None:
        """An invoice of this customer that existed when the ticket was written (open ones first)."""
        invoices = self.invoices_of.get(partner_id)
        if not invoices:
            return None
        stamp = odoo_datetime(created)
        end = bisect.bisect_right(invoices, stamp, key=lambda m: m["create_date"])
        recent = invoices[max(0, end - 12):end]
        if not recent:
            return None
        open_ones = [m for m in recent if m["payment_state"] in ("not_paid", "partial")]
        rng = self.b.rng
        return rng.choice(open_ones if open_ones and rng.random() < 0.7 else recent)

    def _thread_times(self, created: datetime, n: int, limit: datetime) -> list[datetime]:
        rng = self.b.rng
        out, t = [], created
        for _ in range(n):
            t = t + timedelta(seconds=rng.randrange(1800, 3 * 86400))
            if t >= limit:
                break
            out.append(t)
        return out

    def new_ticket(self, created: datetime | None, *, kind: str | None = None,
                   invoice: dict | None = None, requester=None, status: str | None = None) -> dict:
        b, rng = self.b, self.b.rng
        now = b.now
        if created is None:
            created = now - timedelta(seconds=rng.randrange(3600, 150 * 86400))
        if requester is None:
            if self.strays and rng.random() < 0.05:
                requester = (rng.choice(self.strays), None)
            else:
                requester = rng.choice(self.requesters)
        user, cust = requester
        if kind is None:
            r = rng.random()
            kind = ("copy" if r < 0.14 else "dispute" if r < 0.24 else "dispute_quiet" if r < 0.27
                    else "promise" if r < 0.37 else "paid" if r < 0.44 else "reminder" if r < 0.52
                    else "general")
        if kind != "general" and invoice is None:
            invoice = self._pick_invoice(cust.partner_id if cust else None, created)
            if invoice is None:
                kind = "general"
        lang = "de" if cust is not None and cust.lang.startswith("de") and rng.random() < 0.6 else "en"
        tags: list[str] = []
        if kind == "general":
            subj, body = rng.choice(_GENERAL)
            so = f"S{next(self.so):05d}"
            subject, description = subj.format(so=so), body.format(so=so)
            tags = rng.choice([["support"], ["delivery"], [], ["portal"]])
        else:
            subj, body = _TEXTS[lang][kind]
            promise_day = (created.date() + timedelta(days=rng.randint(3, 30)))
            paid_day = created.date() - timedelta(days=rng.randint(0, 3))
            day = promise_day if kind == "promise" else paid_day
            fill = {"inv": invoice["name"], "name": user["name"], "date": day.isoformat(),
                    "date_de": day.strftime("%d.%m.%Y")}
            subject, description = subj.format(**fill), body.format(**fill)
            tags = {"copy": ["billing", "invoice_copy"],
                    "dispute": rng.choice([["billing", "dispute"], ["billing_dispute"], ["billing"]]),
                    "dispute_quiet": ["billing"], "promise": ["billing", "payment_promise"],
                    "paid": ["billing", "remittance"], "reminder": ["billing", "dunning"]}[kind]
        if status is None:
            r = rng.random()
            status = ("new" if r < 0.08 else "open" if r < 0.33 else "pending" if r < 0.48
                      else "hold" if r < 0.53 else "solved" if r < 0.80 else "closed" if r < 0.98
                      else "deleted")
            if kind in ("dispute", "promise") and status in ("closed",) and rng.random() < 0.6:
                status = "open"
        ticket_id = self.tickets[-1]["id"] + 1 if self.tickets else 1
        agent = rng.choice(self.agents[:-1])
        thread = [self._comment(user, description, True, "email", created)]
        extra = [] if status == "new" else self._thread_times(created, rng.randint(1, 4), now)
        for t in extra:
            r = rng.random()
            if r < 0.45:
                thread.append(self._comment(agent, rng.choice(_AGENT_REPLIES), True, "web", t))
            elif r < 0.7:
                thread.append(self._comment(agent, rng.choice(_NOTES), False, "web", t))
            else:
                thread.append(self._comment(user, rng.choice(_CUSTOMER_REPLIES), True, "email", t))
        updated = max(created, parse_zendesk_datetime(thread[-1]["created_at"]))
        if status in ("solved", "closed", "pending", "hold"):
            updated = min(now - timedelta(seconds=60), updated + timedelta(seconds=rng.randrange(60, 86400)))
            updated = max(updated, parse_zendesk_datetime(thread[-1]["created_at"]))
        ticket = {
            "id": ticket_id, "url": f"/api/v2/tickets/{ticket_id}.json", "external_id": None,
            "via": _via("email", user),
            "created_at": zendesk_datetime(created), "updated_at": zendesk_datetime(updated),
            "generated_timestamp": int(updated.timestamp()),
            "type": rng.choice(["question", "incident", None]) if kind == "general" else "question",
            "subject": subject, "raw_subject": subject, "description": description,
            "priority": rng.choice([None, "normal", "normal", "high", "low"]),
            "status": status, "recipient": f"billing@{COMPANY_DOMAIN}",
            "requester_id": user["id"], "submitter_id": user["id"],
            "assignee_id": None if status == "new" else agent["id"],
            "organization_id": user["organization_id"], "group_id": 360_001_234_567,
            "collaborator_ids": _EMPTY, "follower_ids": _EMPTY, "email_cc_ids": _EMPTY, "forum_topic_id": None,
            "problem_id": None, "has_incidents": False, "is_public": True, "due_at": None,
            "tags": tags, "custom_fields": _EMPTY, "satisfaction_rating": None, "sharing_agreement_ids": _EMPTY,
            "brand_id": 360_000_111_222, "allow_channelback": False, "allow_attachments": True,
            "from_messaging_channel": False,
        }
        if status == "deleted":
            _scrub(ticket)
        self.tickets.append(ticket)
        self.comments[ticket_id] = thread
        return ticket

    def _comment(self, author: dict, body: str, public: bool, channel: str, at: datetime) -> dict:
        cid = next(self.ids.comment)
        return {
            "id": cid, "type": "Comment", "author_id": author["id"], "body": body,
            "public": public, "attachments": _EMPTY, "audit_id": cid - 41,
            "via": _via(channel, author), "created_at": zendesk_datetime(at), "metadata": _NO_META,
        }


# Nested objects that are the same for many records are shared (memory at 100k+ tickets):
# edit a record by replacing such a value, not by mutating it in place.
_VIA_CACHE: dict = {}
_NO_META = {"system": {}}
_EMPTY: list = []


def _via(channel: str, user: dict) -> dict:
    key = (channel, user["id"], user["email"], user["name"]) if channel == "email" else channel
    via = _VIA_CACHE.get(key)
    if via is None:
        if len(_VIA_CACHE) > 500_000:
            _VIA_CACHE.clear()
        if channel == "email":
            via = {"channel": "email", "source": {
                "from": {"address": user["email"], "name": user["name"]},
                "to": {"name": "Nordwind Trading Billing", "address": f"billing@{COMPANY_DOMAIN}"},
                "rel": None}}
        else:
            via = {"channel": channel, "source": {"from": {}, "to": {}, "rel": None}}
        _VIA_CACHE[key] = via
    return via


def _scrub(ticket: dict) -> None:
    ticket.update(status="deleted", subject="SCRUBBED", raw_subject="SCRUBBED",
                  description="SCRUBBED", tags=[])


# ---------------------------------------------------------------------------------------------
# The next night
# ---------------------------------------------------------------------------------------------

def advance_night(data: SandboxData) -> NightChanges:
    """Move the simulated clock to the next day and apply that day's business.

    Deterministic for (seed, night number). Every changed record gets a write_date/updated_at
    during the new day, after everything that existed before, so an incremental run finds it.
    """
    with data.lock:
        data.nights += 1
        day = data.as_of + timedelta(days=1)
        rng = _FastRandom(f"{data.seed}:night:{data.nights}")
        b = _Builder(0, day, None)
        b.rng = rng
        changes = NightChanges(as_of=day)
        clock = _DayClock(day, rng)
        factory: _MoveFactory = data._seq.get("_factory")
        if factory is None:  # a dataset built elsewhere: rebuild the shared pairs
            factory = _MoveFactory(b, data.companies, {p["id"]: p for p in data.partners})
            data._seq["_factory"] = factory
        factory.b = b
        factory.partials = data.reconciliations
        b.m2o = _shared_m2o(factory)
        seq = data._seq
        if "_next_move_id" not in seq:
            seq["_next_move_id"] = (data.moves[-1]["id"] + 1) if data.moves else 1
        moves = data.moves
        n = len(moves)
        open_invoices = [m for m in moves if m["move_type"] == "out_invoice" and m["state"] == "posted"
                         and m["payment_state"] in ("not_paid", "partial")]
        rng.shuffle(open_invoices)
        volume = max(2, n // 200)
        # Payments received: full, partial; payments reconciled (in_payment -> paid).
        for m in open_invoices[:max(1, volume)]:
            _set_payment(factory, m, "paid", 0, clock.next_ts())
            changes.paid.append(m["id"])
        rest = open_invoices[max(1, volume):]
        for m in rest[:max(1, volume // 3)]:
            if m["payment_state"] != "not_paid":
                continue
            dec = CURRENCY_BY_CODE[m["currency_id"][1]][3]
            total = round(m["amount_total"] * 10 ** dec)
            residual = max(1, min(total - 1, int(total * rng.uniform(0.2, 0.7))))
            _set_payment(factory, m, "partial", residual, clock.next_ts())
            changes.partially_paid.append(m["id"])
        rest = rest[max(1, volume // 3):]
        in_payment = [m for m in moves if m["payment_state"] == "in_payment" and m["state"] == "posted"]
        for m in in_payment[:max(1, volume // 3)]:
            _set_payment(factory, m, "paid", 0, clock.next_ts())
            changes.reconciled.append(m["id"])
        # One invoice cancelled, one credited in full.
        for m in rest[:1]:
            if m["payment_state"] == "not_paid":
                m["state"] = "cancel"
                m["write_date"] = odoo_ts(clock.next_ts())
                changes.cancelled.append(m["id"])
        for m in rest[1:2]:
            if m["payment_state"] == "not_paid":
                refund = _credit_note(factory, seq, moves, m, rng, when=clock.next_ts(), full=True)
                changes.credit_notes.append(refund["id"])
                changes.reversed_invoices.append(m["id"])
        # A draft posted (numbered today).
        drafts = [m for m in moves if m["state"] == "draft" and m["move_type"] == "out_invoice"]
        for m in drafts[:1]:
            when = clock.next_ts()
            company_id = m["company_id"][0]
            m["state"] = "posted"
            m["invoice_date"] = date_text(day)
            if not m["invoice_date_due"] or m["invoice_date_due"] < date_text(day):
                m["invoice_date_due"] = date_text(day + timedelta(days=30))
            m["name"] = _move_name(seq, company_id, "out_invoice", day)
            m["write_date"] = odoo_ts(when)
            changes.posted_drafts.append(m["id"])
        # New invoices to existing customers.
        buyers = [p for p in data.partners if p["customer_rank"] and p["active"]
                  and p["id"] == p["commercial_partner_id"][0]]
        for _ in range(volume if buyers else 0):
            cust = rng.choice(buyers)
            company_id = cust["company_id"][0] if cust["company_id"] else (
                2 if cust["country_id"] and cust["country_id"][1] in ("United States", "Japan") else 1)
            currency = factory.company_currency[company_id]
            term_id = rng.choice(list(PAYMENT_TERMS))
            when = clock.next_ts()
            move_id = seq["_next_move_id"]
            seq["_next_move_id"] += 1
            factory.partner_pair.setdefault(cust["id"], b.m2o(cust["id"], cust["display_name"]))
            total = _amount_minor(rng, currency)
            moves.append(factory.build(
                move_id=move_id, name=_move_name(seq, company_id, "out_invoice", day),
                move_type="out_invoice", state="posted", payment_state="not_paid",
                partner_id=cust["id"], commercial_id=cust["id"], company_id=company_id,
                currency=currency, invoice_date=day,
                due=day + timedelta(days=PAYMENT_TERMS[term_id][1]), term_id=term_id,
                total_minor=total, residual_minor=total, create_ts=when, write_ts=when,
                origin=f"S{rng.randrange(10000, 99999)}"))
            changes.new_invoices.append(move_id)
            _maybe_instalments(b, data.seed, moves[-1])
        # A customer updates its e-mail address.
        if buyers:
            p = rng.choice(buyers)
            if p["email"] and "@" in p["email"]:
                p["email"] = "accounting@" + p["email"].split("@", 1)[1]
            p["write_date"] = odoo_datetime(clock.next())
            changes.partners_updated.append(p["id"])
        _night_zendesk(data, rng, clock, changes, day)
        data.as_of = day
        data.now = datetime.combine(day, time(23, 0), tzinfo=UTC)
        data.version += 1
        return changes


def _shared_m2o(factory: _MoveFactory):
    cache: dict = {}
    for pair in itertools.chain(factory.partner_pair.values(), factory.company_pair.values(),
                                factory.currency_pair.values(), factory.term_pair.values()):
        cache[tuple(pair)] = pair

    def m2o(rec_id, name):
        return cache.setdefault((rec_id, name), [rec_id, name])
    return m2o


class _DayClock:
    """Increasing timestamps during one business day (07:00 to 20:00 UTC)."""

    def __init__(self, day: date, rng: random.Random):
        self.t = _at(day, 7 * 3600)
        self.rng = rng

    def next(self) -> datetime:
        self.t += timedelta(seconds=self.rng.randrange(1, 40))
        return self.t

    def next_ts(self) -> int:
        return int(self.next().timestamp())


def _night_zendesk(data: SandboxData, rng: random.Random, clock: _DayClock,
                   changes: NightChanges, day: date) -> None:
    tickets = data.zendesk_tickets
    if not tickets:
        return
    volume = max(1, len(tickets) // 150)
    users_by_id = {u["id"]: u for u in data.zendesk_users}
    agents = [u for u in data.zendesk_users if u["role"] in ("agent", "admin")] or None
    comment_ids = [c["id"] for thread in data.zendesk_comments.values() for c in thread[-1:]]
    next_comment = itertools.count((max(comment_ids) if comment_ids else 30_000_000_000_000) + 97, 97)
    live = [t for t in tickets if t["status"] in ("new", "open", "pending", "hold")]
    rng.shuffle(live)
    for t in live[:volume]:
        when = clock.next()
        requester = users_by_id.get(t["requester_id"])
        if rng.random() < 0.5 and agents:
            author = rng.choice(agents[:-1] or agents)
            body, public = rng.choice(_AGENT_REPLIES), True
            channel = "web"
            t["status"] = rng.choice(["pending", "solved"])
        else:
            author = requester or rng.choice(agents)
            body, public, channel = rng.choice(_CUSTOMER_REPLIES), True, "email"
            t["status"] = "open"
        cid = next(next_comment)
        data.zendesk_comments.setdefault(t["id"], []).append({
            "id": cid, "type": "Comment", "author_id": author["id"], "body": body, "public": public,
            "attachments": [], "audit_id": cid - 41, "via": _via(channel, author),
            "created_at": zendesk_datetime(when), "metadata": {"system": {}},
        })
        t["updated_at"] = zendesk_datetime(when)
        t["generated_timestamp"] = int(when.timestamp())
        changes.tickets_updated.append(t["id"])
        changes.comments_new.append(cid)
    # New tickets: a dispute about an open overdue invoice, a payment promise, general ones.
    requesters = []
    for u in data.zendesk_users:
        if u["role"] == "end-user":
            requesters.append(u)
    by_email = {u["email"].lower(): u for u in requesters if u.get("email")}
    overdue = [m for m in data.moves if m["move_type"] == "out_invoice" and m["state"] == "posted"
               and m["payment_state"] == "not_paid" and m["invoice_date_due"]
               and m["invoice_date_due"] < day.isoformat()]
    partners_by_commercial: dict[int, list[dict]] = {}
    for p in data.partners:
        if p["email"] and p["commercial_partner_id"]:
            partners_by_commercial.setdefault(p["commercial_partner_id"][0], []).append(p)
    n_new = max(1, volume)
    fake_builder = _Builder(0, day, None)
    fake_builder.rng = rng
    fake_builder.now = datetime.combine(day, time(23, 0), tzinfo=UTC)
    ids = _ZendeskIds(rng)
    ids.comment = next_comment
    gen = _TicketGen(fake_builder, ids, agents or [], {}, [], [], tickets, data.zendesk_comments)
    for k in range(n_new):
        kind = ["dispute", "promise", "general"][k % 3]
        invoice = None
        requester = None
        if kind != "general" and overdue:
            for _ in range(20):
                m = rng.choice(overdue)
                contacts = [by_email[p["email"].lower()] for p in
                            partners_by_commercial.get(m["commercial_partner_id"][0], [])
                            if p["email"].lower() in by_email]
                if contacts:
                    invoice, requester = m, rng.choice(contacts)
                    break
        if invoice is None:
            kind = "general"
            requester = rng.choice(requesters) if requesters else None
        if requester is None:
            continue
        cust = _Customer(0, "", "", "en_US", 0, "", True, None, None, [], 1.0, [], True, 1.0)
        gen.invoices_of = {0: [invoice]} if invoice else {}
        when = clock.next()
        ticket = gen.new_ticket(when, kind=kind, invoice=invoice, requester=(requester, cust),
                                status="new")
        changes.tickets_new.append(ticket["id"])
        changes.comments_new.extend(c["id"] for c in data.zendesk_comments[ticket["id"]])
    # Zendesk re-sends some tickets (a new generated_timestamp, the same updated_at and content).
    touched = set(changes.tickets_updated) | set(changes.tickets_new)
    quiet = [t for t in tickets if t["id"] not in touched and t["status"] != "deleted"]
    for t in rng.sample(quiet, min(len(quiet), max(1, volume // 2))):
        t["generated_timestamp"] = int(clock.next().timestamp())
        changes.tickets_resent.append(t["id"])


# ---------------------------------------------------------------------------------------------
# Zendesk: the shapes real accounts have, and the named scenarios
# ---------------------------------------------------------------------------------------------

def _odd_shapes(b: _Builder, rng: random.Random, ids: _ZendeskIds, users: list[dict], tickets: list[dict],
                comments: dict[int, list[dict]], requesters: list) -> None:
    """Odd but documented shapes: a via id (integer) instead of a channel name, colleagues in
    CC and as collaborators, a phone contact without an email, a deleted (inactive) and a
    suspended user. Nested objects are replaced, never mutated (they are shared)."""
    if not tickets or not requesters:
        return
    for t in tickets:
        via = t["via"]
        if t["status"] != "deleted" and via["channel"] == "email" and rng.random() < 0.08:
            t["via"] = {**via, "channel": 4}  # Zendesk's via id of "mail"
        thread = comments.get(t["id"], [])
        for i, c in enumerate(thread):
            if c["via"]["channel"] == "web" and rng.random() < 0.1:
                thread[i] = {**c, "via": {**c["via"], "channel": 0}}  # via id of "web_form"
    by_user = {u["id"]: cust for u, cust in requesters}
    colleagues: dict[int, list[dict]] = {}
    for u, cust in requesters:
        if cust is not None:
            colleagues.setdefault(cust.partner_id, []).append(u)
    for t in tickets:
        cust = by_user.get(t["requester_id"])
        others = [u for u in colleagues.get(cust.partner_id, []) if u["id"] != t["requester_id"]] if cust else []
        if others and t["status"] != "deleted" and rng.random() < 0.12:
            cc = rng.choice(others)
            t["email_cc_ids"] = [cc["id"]]
            t["collaborator_ids"] = [cc["id"]]
    start = b.as_of - timedelta(days=300)
    owner, cust = rng.choice(requesters)
    phone = _user(next(ids.user), "Caller " + owner["name"].split()[-1], None, "end-user",
                  owner["organization_id"], owner["locale"], _at(start, 36000))
    phone["phone"] = "+49 30 " + str(rng.randrange(1000000, 9999999))
    gone = _user(next(ids.user), "Former " + owner["name"].split()[-1], "former.contact@" +
                 (owner["email"] or "example.org").split("@")[-1], "end-user", owner["organization_id"],
                 owner["locale"], _at(start, 40000))
    gone["active"] = False
    spam = _user(next(ids.user), "Prize Desk", "winner@prize-desk.example", "end-user", None, "en-US",
                 _at(start, 50000))
    spam["suspended"] = True
    users.extend([phone, gone, spam])
    # A phone call logged by an agent: via id 34 (inbound call), no email anywhere.
    last = parse_zendesk_datetime(tickets[-1]["created_at"])
    when = min(b.now - timedelta(hours=3), last + timedelta(minutes=5))
    if when > last:
        agent = next(u for u in users if u["role"] == "agent")
        t = _plain_ticket(tickets, phone, "Phone call from " + phone["name"],
                          "Caller asked when the next delivery arrives.", when, "solved", ["phone"])
        t["via"] = {"channel": 34, "source": {"from": {"phone": phone["phone"], "name": phone["name"]},
                                             "to": {}, "rel": "inbound"}}
        t["assignee_id"] = agent["id"]
        comments[t["id"]] = [_scenario_comment(ids, phone, t["description"], True, when,
                                               {"channel": 34, "source": t["via"]["source"]})]


def _plain_ticket(tickets: list[dict], requester: dict, subject: str, description: str, created: datetime,
                  status: str, tags: list[str], *, updated: datetime | None = None) -> dict:
    """A ticket with the fields of the export; appended with the next id."""
    ticket_id = tickets[-1]["id"] + 1 if tickets else 1
    updated = updated or created
    ticket = {
        "id": ticket_id, "url": f"/api/v2/tickets/{ticket_id}.json", "external_id": None,
        "via": _via("email", requester) if requester.get("email") else
        {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
        "created_at": zendesk_datetime(created), "updated_at": zendesk_datetime(updated),
        "generated_timestamp": int(updated.timestamp()), "type": "question",
        "subject": subject, "raw_subject": subject, "description": description, "priority": "normal",
        "status": status, "recipient": f"billing@{COMPANY_DOMAIN}", "requester_id": requester["id"],
        "submitter_id": requester["id"], "assignee_id": None,
        "organization_id": requester["organization_id"], "group_id": 360_001_234_567,
        "collaborator_ids": [], "follower_ids": [], "email_cc_ids": [], "forum_topic_id": None,
        "problem_id": None, "has_incidents": False, "is_public": True, "due_at": None, "tags": tags,
        "custom_fields": [], "satisfaction_rating": None, "sharing_agreement_ids": [],
        "brand_id": 360_000_111_222, "allow_channelback": False, "allow_attachments": True,
        "from_messaging_channel": False,
    }
    tickets.append(ticket)
    return ticket


def _scenario_comment(ids: _ZendeskIds, author: dict, body: str, public: bool, at: datetime,
                      via: dict | None = None) -> dict:
    cid = next(ids.comment)
    return {"id": cid, "type": "Comment", "author_id": author["id"], "body": body, "public": public,
            "attachments": [], "audit_id": cid - 41,
            "via": via or _via("email" if author["role"] == "end-user" and author.get("email") else "web", author),
            "created_at": zendesk_datetime(at), "metadata": {"system": {}}}


def _written_forms(number: str) -> tuple[str, str]:
    """How customers write INV/2026/00054: "2026/00054" and "invoice 54"."""
    parts = number.split("/")
    return "/".join(parts[1:]), f"invoice {int(parts[-1])}"


def _zendesk_scenarios(b: _Builder, rng: random.Random, ids: _ZendeskIds, users: list[dict], agents: list[dict],
                       requesters: list,
                       invoices_of: dict[int, list[dict]], tickets: list[dict],
                       comments: dict[int, list[dict]]) -> dict[str, dict]:
    """The situations the matching and the holds must get right, each on its own customer and
    open overdue invoice, created after every ordinary ticket (ids grow with creation time).
    Returns name -> {"ticket_id", "customer_id" (Odoo commercial partner), "invoice_id",
    "invoice_number", "company_id", "expect" (the hold kind or None), ...}."""
    if not tickets or not agents:
        return {}
    as_of = date_text(b.as_of)
    contacts: dict[int, list[dict]] = {}
    custs: dict[int, _Customer] = {}
    for u, cust in requesters:
        if cust is not None and u.get("email"):
            contacts.setdefault(cust.partner_id, []).append(u)
            custs[cust.partner_id] = cust
    candidates = []
    for pid in sorted(contacts):
        overdue = [m for m in invoices_of.get(pid, []) if m["payment_state"] == "not_paid"
                   and m["invoice_date_due"] and m["invoice_date_due"] < as_of and m["name"].count("/") == 2]
        if overdue:
            candidates.append((pid, overdue))
    rng.shuffle(candidates)
    german = [c for c in candidates if custs[c[0]].lang.startswith("de")]
    agent, other_agent = agents[0], agents[1 % len(agents)]
    last = parse_zendesk_datetime(tickets[-1]["created_at"])
    begin = max(last + timedelta(minutes=1), b.now - timedelta(days=2))
    span = (b.now - timedelta(hours=2)) - begin
    if span < timedelta(minutes=40):
        return {}
    step = span / 10
    clock = [begin]

    def at(minutes: float = 0) -> datetime:
        clock[0] = clock[0] + step if minutes == 0 else clock[0] + timedelta(minutes=minutes)
        return clock[0]

    used: set[int] = set()

    def take(pool) -> tuple[int, dict] | None:
        for pid, overdue in pool:
            if pid not in used:
                used.add(pid)
                return pid, rng.choice(overdue)
        return None

    def entry(ticket, pid, inv, expect, **extra) -> dict:
        return {"ticket_id": ticket["id"], "customer_id": pid, "invoice_id": inv["id"],
                "invoice_number": inv["name"], "company_id": inv["company_id"][0], "expect": expect, **extra}

    out: dict[str, dict] = {}
    # 1. A mail an agent forwarded: the agent is the requester, the customer only the sender.
    if (pick := take(candidates)) is not None:
        pid, inv = pick
        cust, contact = custs[pid], contacts[pid][0]
        short, _ = _written_forms(inv["name"])
        when = at()
        quoted = (f"---------- Forwarded message ---------\nFrom: {contact['name']} <{contact['email']}>\n"
                  f"Subject: Invoice {short}\n\nHello,\n\nwe dispute invoice {short}: half of the goods "
                  f"were returned damaged. We will not pay it until you send a credit note.\n\n"
                  f"Regards,\n{contact['name']}")
        body = f"Forwarding the customer's mail below, please check.\n\n{quoted}"
        t = _plain_ticket(tickets, agent, f"Fwd: Invoice {short}", body, when, "open", ["billing"],
                          updated=when + timedelta(minutes=1))
        t["via"] = {"channel": "email", "source": {
            "from": {"address": contact["email"], "name": contact["name"]},
            "to": {"name": "Nordwind Trading Billing", "address": f"billing@{COMPANY_DOMAIN}"}, "rel": None}}
        t["organization_id"] = contact["organization_id"]
        t["assignee_id"] = agent["id"]
        comments[t["id"]] = [_scenario_comment(ids, agent, body, True, when, t["via"])]
        out["forwarded_dispute"] = entry(t, pid, inv, "dispute", written_as=short, sender=contact["email"])
    # 2. An outside bookkeeper writes, the customer's contact in CC; the invoice as "invoice 54".
    if (pick := take(candidates)) is not None:
        pid, inv = pick
        contact = contacts[pid][0]
        # "invoice 7" would be too short to be told apart from other numbers: a two-digit one.
        inv = next((m for pid_, overdue in candidates if pid_ == pid for m in overdue
                    if int(m["name"].rsplit("/", 1)[-1]) >= 10), inv)
        _, plain = _written_forms(inv["name"])
        when = at()
        keeper = _user(next(ids.user), "Petra Vogel", "p.vogel@vogel-steuerberatung.de", "end-user", None,
                       "de", when - timedelta(days=1))
        users.append(keeper)  # no organization: an outside firm, not the customer
        body = (f"Hello,\n\nas the bookkeeper of {custs[pid].name} I dispute {plain}: the agreed 3% "
                f"discount is missing. Please correct it before sending reminders.\n\nPetra Vogel")
        t = _plain_ticket(tickets, keeper, f"Your {plain}", body, when, "open", ["billing"],
                          updated=when + timedelta(minutes=2))
        t["email_cc_ids"] = [contact["id"]]
        t["collaborator_ids"] = [contact["id"]]
        t["assignee_id"] = agent["id"]
        comments[t["id"]] = [_scenario_comment(ids, keeper, body, True, when)]
        out["bookkeeper_cc"] = entry(t, pid, inv, "dispute", written_as=plain, requester_user_id=keeper["id"],
                                     cc_user_id=contact["id"])
    # 3. The customer says it paid: a payment claim, not a dispute.
    if (pick := take(candidates)) is not None:
        pid, inv = pick
        contact = contacts[pid][0]
        when = at()
        body = (f"Hello,\n\nwe have paid {inv['name']} last week by bank transfer, please check your "
                f"account.\n\n{contact['name']}")
        t = _plain_ticket(tickets, contact, f"Payment {inv['name']}", body, when, "open", ["billing"],
                          updated=when + timedelta(minutes=1))
        comments[t["id"]] = [_scenario_comment(ids, contact, body, True, when)]
        out["payment_claim"] = entry(t, pid, inv, "payment_claimed")
    # 4. A dispute in German, without a dispute tag.
    if (pick := take(german) or take(candidates)) is not None:
        pid, inv = pick
        contact = contacts[pid][0]
        when = at()
        body = (f"Sehr geehrte Damen und Herren,\n\nwir widersprechen der Rechnung {inv['name']}: die "
                f"Leistung wurde nicht vollständig erbracht.\n\nMit freundlichen Grüßen\n{contact['name']}")
        t = _plain_ticket(tickets, contact, f"Rechnung {inv['name']}", body, when, "open", [],
                          updated=when + timedelta(minutes=1))
        comments[t["id"]] = [_scenario_comment(ids, contact, body, True, when)]
        out["german_dispute"] = entry(t, pid, inv, "dispute")
    # 5. Our reminder, sent by an agent through the API (no sender), the customer in CC; pending.
    if (pick := take(candidates)) is not None:
        pid, inv = pick
        contact = contacts[pid][0]
        when = at()
        body = (f"Dear customer,\n\nthis is a friendly reminder that invoice {inv['name']} is overdue. "
                f"Please arrange the payment or tell us if anything is wrong with it.\n\n{agent['name']}")
        t = _plain_ticket(tickets, agent, f"Payment reminder {inv['name']}", body, when, "pending",
                          ["billing", "dunning"], updated=when + timedelta(minutes=1))
        t["via"] = {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}}
        t["email_cc_ids"] = [contact["id"]]
        t["organization_id"] = contact["organization_id"]
        t["assignee_id"] = agent["id"]
        comments[t["id"]] = [_scenario_comment(ids, agent, body, True, when,
                                               {"channel": "api", "source": t["via"]["source"]})]
        out["reminder_pending"] = entry(t, pid, inv, None)
    # 6. An internal note naming an invoice on a customer's unrelated ticket.
    if (pick := take(candidates)) is not None:
        pid, inv = pick
        contact = contacts[pid][0]
        when = at()
        body = "Please note our new delivery address from next month on."
        note = f"Before we ship: the customer still owes {inv['name']}, check with accounting."
        t = _plain_ticket(tickets, contact, "New delivery address", body, when, "open", ["delivery"],
                          updated=when + timedelta(minutes=30))
        t["assignee_id"] = agent["id"]
        comments[t["id"]] = [_scenario_comment(ids, contact, body, True, when),
                             _scenario_comment(ids, agent, note, False, when + timedelta(minutes=30))]
        out["internal_note"] = entry(t, pid, inv, None)
    # 7. A merged pair: the customer's dispute (closed by the merge) and the ticket it went into.
    if (pick := take(candidates)) is not None:
        pid, inv = pick
        writer, other = contacts[pid][0], contacts[pid][-1]
        first = at()
        body = f"Hello,\n\nwe dispute {inv['name']}: the hours billed are not what we agreed.\n\n{writer['name']}"
        source = _plain_ticket(tickets, writer, f"Invoice {inv['name']}", body, first, "closed",
                               ["billing", "closed_by_merge"])
        second = at(20)
        body2 = f"Hello,\n\ncan we talk about our account this week?\n\n{other['name']}"
        target = _plain_ticket(tickets, other, "Our account", body2, second, "open", ["billing"])
        merged = second + timedelta(minutes=15)
        closing = (f"This request was closed and merged into request #{target['id']} "
                   f"\"{target['subject']}\".")
        into = (f"Request #{source['id']} \"{source['subject']}\" was closed and merged into this request. "
                f"Last comment in request #{source['id']}:\n\n{body}")
        comments[source["id"]] = [_scenario_comment(ids, writer, body, True, first),
                                  _scenario_comment(ids, other_agent, closing, True, merged)]
        comments[target["id"]] = [_scenario_comment(ids, other, body2, True, second),
                                  _scenario_comment(ids, other_agent, into, True, merged)]
        for t in (source, target):
            t["updated_at"] = zendesk_datetime(merged)
            t["generated_timestamp"] = int(merged.timestamp())
            t["assignee_id"] = other_agent["id"]
        out["merged_pair"] = entry(target, pid, inv, "dispute", source_ticket_id=source["id"],
                                   target_ticket_id=target["id"])
    return out
