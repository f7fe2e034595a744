"""The odoo part of the code location; merged by dunning_pipeline.definitions."""

import dagster as dg

defs = dg.Definitions()
