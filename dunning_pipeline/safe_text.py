"""Text that every database can store: the one home for replacing characters that cannot be.

A source may send a lone UTF-16 surrogate (JSON's "\\ud800" escape, or Python's stand-in for an
undecodable byte, "\\udcff"), a NUL (PostgreSQL text cannot hold it), or U+FFFD (what HTTP
decoding makes of bytes that were not valid UTF-8). The parsers replace the first two by U+FFFD
and note the record and field for the `fields_parse` check (`text_problem`); the warehouse's
write path replaces them too (`clean_strings`), so no value can crash a COPY.

Pure: no I/O, no pandas.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")
_SUSPECT = re.compile("[\ud800-\udfff\x00\ufffd]")


def clean(text: str) -> str:
    """`text` with each lone surrogate and NUL replaced by U+FFFD."""
    return _UNSTORABLE.sub(REPLACEMENT, text)


def text_problem(text: str) -> str | None:
    """Why `text` had to be (or was already) altered on its way in, or None when it is fine."""
    if text.isascii() and "\x00" not in text:
        return None
    found = _SUSPECT.findall(text)
    if not found:
        return None
    kinds = []
    if any("\ud800" <= c <= "\udfff" for c in found):
        kinds.append("a lone surrogate (invalid UTF-8 or UTF-16)")
    if "\x00" in found:
        kinds.append("a NUL character")
    if REPLACEMENT in found:
        kinds.append("U+FFFD (bytes that were not valid UTF-8)")
    return f"holds {' and '.join(kinds)}, stored as U+FFFD"


def suspect_positions(values: Sequence[object]) -> list[int]:
    """Positions of the strings in `values` that `text_problem` would describe; fast when none
    is (one C-speed scan of all of them joined)."""
    strings = [v for v in values if isinstance(v, str)]
    joined = "".join(strings)
    if joined.isascii() and "\x00" not in joined:
        return []
    if not _SUSPECT.search(joined):
        return []
    return [i for i, v in enumerate(values) if isinstance(v, str) and _SUSPECT.search(v)]


def clean_strings(values: Sequence[object]) -> list[object]:
    """`values` (strings, or None for null) with every string `clean`ed; the same list object
    when nothing needs replacing."""
    strings = [v for v in values if isinstance(v, str)]
    joined = "".join(strings)
    if (joined.isascii() and "\x00" not in joined) or not _UNSTORABLE.search(joined):
        return values
    return [clean(v) if isinstance(v, str) else v for v in values]
