"""How an asset check judges: when a failure is an ERROR and when a WARN, stated where the UI
shows it (the check's description and metadata).

Dagster stops the assets downstream of a `blocking` check only when it fails with ERROR, so a
check is marked blocking only if its rule can give an ERROR: a blocking flag on a check that can
only warn would promise a stop that never comes. Pure: no Dagster import.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeverityRule:
    """When a check fails with ERROR and when with WARN (empty: never)."""

    error_when: str = ""
    warn_when: str = ""

    def __post_init__(self) -> None:
        if not (self.error_when or self.warn_when):
            raise ValueError("a severity rule says when the check fails")

    @property
    def can_error(self) -> bool:
        return bool(self.error_when)

    @property
    def text(self) -> str:
        parts = [f"ERROR when {self.error_when}" if self.error_when else "never ERROR",
                 f"WARN when {self.warn_when}" if self.warn_when else "never WARN"]
        return "Severity: " + "; ".join(parts) + "."

    def describe(self, description: str) -> str:
        """The check's description followed by its severity rule."""
        return f"{description.rstrip()} {self.text}"

    def metadata(self) -> dict[str, str | bool]:
        return {"severity_rule": self.text, "can_fail_with_error": self.can_error}
