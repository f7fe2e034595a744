"""Data quality: Great Expectations 1.x suites of the raw Odoo and Zendesk tables, run as blocking
Dagster asset checks, with a quarantine of the records the dunning engine must leave out.

- `suites.py`      the rules per raw table, as data (which GX expectation, which field, severity)
- `thresholds.py`  the tunable limits (pydantic), also the checks' run config
- `gx_runner.py`   the only module that imports GX (lazily): validate a frame, return plain dicts
- `validation.py`  judge a table: run its rules, name every failing record, build quarantine rows
- `frames.py`      read a raw table, surviving stored values that are not dates
- `quarantine.py`  the quarantine table: replace per asset, `quarantined_ids` for the engine
- `report.py`      the check metadata (markdown tables naming records, fields and values)
- `checks.py`      the Dagster asset checks; `definitions.py` exports them as `defs`
"""
