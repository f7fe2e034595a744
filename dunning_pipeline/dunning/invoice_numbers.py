"""Invoice numbers as customers write them, matched to that customer's own invoices.

Odoo numbers an invoice PREFIX/YEAR/[MONTH/]SEQUENCE (INV/2025/00054, RINV/2026/03/0007), and
numbers are unique per company only. People write them in other forms; each form found in a
text becomes a key that is joined to the invoices of the ticket's customer (never to the whole
ledger), so "invoice 54" names that customer's invoice 54 and nobody else's:

- `full`: the number with '/' or '-' (INV/2025/00054, inv-2025-00054): prefix, year, month, sequence;
- `year`: year and sequence without the prefix (2025/00054, 2026/03/0007; 3+ digits, so dates
  such as 2025/03/15 are not read as numbers): year, month, sequence;
- `word`: an invoice word of the policy and the sequence (invoice 54, Rechnung Nr. 54,
  facture n° 54): the sequence only;
- `exact`: what the policy's `invoice_number_pattern` finds, compared as written (other schemes).

Sequences compare as integers (00054 = 54). One regex pass over the texts (`str.extractall`)
and hash joins on (customer, key): no loop over invoices or tickets. Pure pandas.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dunning_pipeline import lazy

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

# An Odoo invoice name split into its parts (upper-cased before matching).
_NAME = re.compile(r"^(?P<prefix>[A-Z][A-Z0-9]*)[/-](?P<year>\d{4})[/-](?:(?P<month>\d{2})[/-])?(?P<seq>\d+)$")
_NUMBER_WORDS = r"(?:no|nr|n°|nº|num|number|nummer|numéro|numero)"
_NO_MONTH = -1  # the month of a number without one (join keys cannot be null)

MATCH_COLUMNS = ["text_row", "invoice_id", "invoice_number", "company_id", "form"]


def text_pattern(exact_pattern: str, invoice_words: Sequence[str]) -> str:
    """The one regex (named groups) that finds every form in a text."""
    words = "|".join(re.escape(w) for w in sorted(invoice_words, key=len, reverse=True))
    full = (r"(?<![\w/-])(?P<f_prefix>[A-Za-z][A-Za-z0-9]*)[/-](?P<f_year>\d{4})[/-]"
            r"(?:(?P<f_month>\d{2})[/-])?(?P<f_seq>\d{1,9})(?![\w/-])")
    year = r"(?<![\w/-])(?P<y_year>(?:19|20)\d{2})[/-](?:(?P<y_month>\d{2})[/-])?(?P<y_seq>\d{3,9})(?![\w/-])"
    word = (rf"(?<!\w)(?:{words})(?!\w)\.?\s*(?:{_NUMBER_WORDS}\.?\s*)?[:#]?\s*(?P<w_seq>\d{{1,9}})"
            r"(?![\w/-]|[.,]\d)") if words else r"(?P<w_seq>(?!x)x)"  # no words: never (the group stays)
    # The leading look-behind lets the engine skip positions inside words at once (most of a text).
    return rf"(?<!\w)(?:(?P<exact>{exact_pattern})|{full}|{year}|{word})"


def invoice_keys(invoices: pd.DataFrame) -> pd.DataFrame:
    """invoice_id, invoice_number, company_id, customer_id, exact (upper-cased name) and the
    parsed prefix, year, month, seq (null where the name has another shape)."""
    names = invoices["name"].astype("str")
    parts = names.str.upper().str.extract(_NAME)
    return pd.DataFrame({
        "invoice_id": invoices["id"].astype("int64").to_numpy(),
        "invoice_number": names.to_numpy(),
        "company_id": (invoices["company_id"].astype("Int64") if "company_id" in invoices
                       else pd.Series(pd.NA, index=invoices.index, dtype="Int64")).array,
        "customer_id": invoices["customer_id"].astype("Int64").array,
        "exact": names.str.upper().to_numpy(),
        "prefix": parts["prefix"].to_numpy(dtype=object),
        "year": pd.to_numeric(parts["year"]).astype("Int64").array,
        "month": pd.to_numeric(parts["month"]).astype("Int64").fillna(_NO_MONTH).array,
        "seq": pd.to_numeric(parts["seq"]).astype("Int64").array,
    })


def find_candidates(texts: pd.Series, pattern: str) -> pd.DataFrame:
    """Every number-like candidate in the texts: text_row (position in `texts`), form, exact,
    prefix, year, month, seq. `pattern` is `text_pattern`'s (its named groups are read)."""
    rx = re.compile(pattern, re.IGNORECASE)
    names = sorted(rx.groupindex, key=rx.groupindex.get)
    # finditer over the texts (str.extractall builds a frame per text: several times slower).
    rows, groups = [], []
    for i, text in enumerate(texts.tolist()):
        for m in rx.finditer(text):
            rows.append(i)
            groups.append(m.groups())
    found = pd.DataFrame(groups, columns=range(rx.groups), dtype=object)
    found = found[[rx.groupindex[n] - 1 for n in names]].set_axis(names, axis=1)
    if found.empty:
        return pd.DataFrame({"text_row": pd.Series(dtype="int64"), "form": pd.Series(dtype=object),
                             "exact": pd.Series(dtype=object), "prefix": pd.Series(dtype=object),
                             "year": pd.Series(dtype="Int64"), "month": pd.Series(dtype="Int64"),
                             "seq": pd.Series(dtype="Int64")})
    # The exact pattern is listed first in the regex, so its numbers are also read as `full` keys.
    exact = found["exact"].str.upper()
    parsed = pd.DataFrame(None, index=found.index, columns=list(_NAME.groupindex), dtype=object)
    if exact.notna().any():
        parsed.loc[exact.notna()] = exact[exact.notna()].str.extract(_NAME).to_numpy(dtype=object)

    def num(*cols) -> pd.Series:
        out = pd.Series(pd.NA, index=found.index, dtype="Int64")
        for col in cols:
            out = out.fillna(pd.to_numeric(col).astype("Int64"))
        return out

    form = pd.Series("word", index=found.index, dtype=object)
    form[found["y_seq"].notna()] = "year"
    form[found["f_seq"].notna() | parsed["seq"].notna()] = "full"
    form[exact.notna() & parsed["seq"].isna()] = "exact"
    return pd.DataFrame({
        "text_row": np.asarray(rows, dtype=np.int64),
        "form": form.to_numpy(),
        "exact": exact.to_numpy(dtype=object),
        "prefix": parsed["prefix"].fillna(found["f_prefix"].str.upper()).to_numpy(dtype=object),
        "year": num(parsed["year"], found["f_year"], found["y_year"]).array,
        "month": num(parsed["month"], found["f_month"], found["y_month"]).fillna(_NO_MONTH).array,
        "seq": num(parsed["seq"], found["f_seq"], found["y_seq"], found["w_seq"]).array,
    })


def match_numbers(candidates: pd.DataFrame, text_customer: pd.Series, keys: pd.DataFrame) -> pd.DataFrame:
    """(text_row, invoice_id, invoice_number, company_id, form) for candidates that name an
    invoice of the text's customer (`text_customer`: customer id per text row, by position).
    A form that fits several of the customer's invoices (e.g. "invoice 54" of two years, or the
    same number in two of our companies) names each of them."""
    cand = candidates.assign(customer_id=text_customer.to_numpy()[candidates["text_row"].to_numpy()])
    cand = cand[cand["customer_id"].notna()].astype({"customer_id": "int64"})
    inv = keys[keys["customer_id"].notna()].astype({"customer_id": "int64"})
    on = {"exact": ["customer_id", "exact"], "full": ["customer_id", "prefix", "year", "month", "seq"],
          "year": ["customer_id", "year", "month", "seq"], "word": ["customer_id", "seq"]}
    parts = []
    for form, cols in on.items():
        c = cand[cand["form"] == form] if form != "exact" else cand[cand["exact"].notna()]
        c = c.dropna(subset=cols)
        if len(c):
            right = inv.dropna(subset=cols)[[*dict.fromkeys(cols), "invoice_id", "invoice_number", "company_id"]]
            hit = c[["text_row", *cols]].merge(right, on=cols)
            parts.append(hit.assign(form=form)[MATCH_COLUMNS])
    if not parts:
        return pd.DataFrame({"text_row": pd.Series(dtype="int64"), "invoice_id": pd.Series(dtype="int64"),
                             "invoice_number": pd.Series(dtype=object), "company_id": pd.Series(dtype="Int64"),
                             "form": pd.Series(dtype=object)})
    return pd.concat(parts, ignore_index=True).drop_duplicates(["text_row", "invoice_id"])
