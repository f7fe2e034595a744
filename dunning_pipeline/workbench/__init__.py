"""The collections workbench: the web pages accountants work in (worklist, customer, report).

Server-rendered (Starlette, Jinja2, uvicorn), reading the warehouse through `Warehouse` with SQL
doing the filtering and paging. `python -m dunning_pipeline.workbench` serves it; see
`config.py` for its environment variables. Kept import-light: `tables` is loaded with the schema.
"""
