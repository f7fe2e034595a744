"""Loading the code location stays cheap (issue 12): the libraries only a running step needs are
not imported when Dagster imports `dunning_pipeline.definitions`. Checked by what is imported,
not by timing, in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

# Imported by steps (frames, HTTP clients, templates, Slack, data checks), not by the definitions.
# SQLAlchemy is not here: the warehouse tables give the column schemas the UI shows at load, and
# Dagster's code server imports it for its own storage anyway.
STEP_ONLY = ("pandas", "numpy", "pyarrow", "requests", "urllib3", "jinja2", "babel", "slack_sdk",
             "great_expectations", "matplotlib")

_PROBE = """
import json, sys
import dagster
by_dagster = set(sys.modules)
import dunning_pipeline.definitions
print(json.dumps({"by_dagster": sorted(m for m in STEP_ONLY if m in by_dagster),
                  "by_us": sorted(m for m in STEP_ONLY if m in sys.modules and m not in by_dagster)}))
"""


def _probe(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", f"STEP_ONLY = {STEP_ONLY!r}\n{code}"], check=True,
                         capture_output=True, text=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_loading_the_code_location_imports_no_step_only_library():
    found = _probe(_PROBE)
    assert found["by_us"] == [], f"imported when the code location loads: {found['by_us']}"
    # Not vacuous: these are libraries Dagster does not import itself (else it would pay for them).
    assert {"pandas", "requests", "jinja2", "slack_sdk"}.isdisjoint(found["by_dagster"])


def test_a_step_only_library_is_imported_on_first_use_and_is_the_library_itself():
    found = _probe("""
import json, sys
from dunning_pipeline import lazy
pd = lazy.module("pandas")
before = "pandas" in sys.modules
frame = pd.DataFrame({"amount": [1, 2]})
import pandas
print(json.dumps({"before": before, "after": "pandas" in sys.modules,
                  "same": pd.DataFrame is pandas.DataFrame and isinstance(frame, pandas.DataFrame),
                  "submodule": pd.api.types.is_integer_dtype(frame["amount"])}))
""")
    assert found == {"before": False, "after": True, "same": True, "submodule": True}

