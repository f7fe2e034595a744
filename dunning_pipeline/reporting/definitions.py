"""The reporting part of the code location; merged by dunning_pipeline.definitions."""

import dagster as dg

from dunning_pipeline.reporting import report_assets, worklist_assets
from dunning_pipeline.reporting.draft_assets import ASSETS as DRAFT_ASSETS

defs = dg.Definitions(
    assets=[
        *report_assets.ASSETS,  # AR aging report, collection KPIs
        *DRAFT_ASSETS,  # customer_timeline, late_payment_charges, reminder_drafts
        *worklist_assets.ASSETS,  # the workbench's worklist rollup
    ],
    asset_checks=[*report_assets.ASSET_CHECKS],
)
