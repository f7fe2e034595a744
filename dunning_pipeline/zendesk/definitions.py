"""The zendesk part of the code location; merged by dunning_pipeline.definitions."""

import dagster as dg

from dunning_pipeline.zendesk.assets import zendesk_comments, zendesk_tickets_and_users

defs = dg.Definitions(assets=[zendesk_tickets_and_users, zendesk_comments])
