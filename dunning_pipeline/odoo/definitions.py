"""The odoo part of the code location; merged by dunning_pipeline.definitions.

The "odoo" and "warehouse" resources are bound in the top-level Definitions.
"""

import dagster as dg

from dunning_pipeline.odoo.assets import odoo_customers, odoo_invoices, odoo_receivable_lines, odoo_reconciliations

defs = dg.Definitions(assets=[odoo_invoices, odoo_customers, odoo_receivable_lines, odoo_reconciliations])
