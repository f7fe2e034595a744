"""dunning_pipeline: a Dagster code location that collects overdue invoices.

Compatible ranges live here; `constraints.txt` pins the exact versions that `make` installs,
so a fresh install is reproducible.
"""

from setuptools import find_packages, setup

setup(
    name="dunning_pipeline",
    version="0.1.0",
    description="Nightly dunning on Odoo invoices and Zendesk tickets, with a weekly Slack alert",
    python_requires=">=3.11",
    packages=find_packages(exclude=["dunning_pipeline_tests*", "benchmarks*"]),
    package_data={"dunning_pipeline": ["default_policy.yaml", "reporting/templates/*.j2",
                                        "workbench/templates/*.html", "workbench/static/*"]},
    install_requires=[
        "dagster>=1.13,<1.14",
        "dagster-webserver>=1.13,<1.14",
        "dagster-postgres>=0.29,<0.30",
        "pandas>=3,<4",
        "requests>=2.32,<3",
        "urllib3>=2,<3",
        "slack-sdk>=3.30,<4",
        "great-expectations>=1.5,<2",
        "sqlalchemy>=2.0,<2.1",  # dagster-postgres builds postgresql:// URLs, which 2.1 maps to psycopg 3
        "alembic>=1.13,<2",
        "psycopg2-binary>=2.9,<3",
        "pydantic>=2,<3",
        "pyyaml>=6,<7",
        "jinja2>=3.1,<4",  # reminder drafts and the customer timeline view
        "babel>=2.18,<3",  # amounts and dates in the customer's locale
        "altair>=5,<7",  # charts of the report and the KPIs
        "vl-convert-python>=1.9,<2",  # renders them to PNG offline
        "argon2-cffi>=25,<26",  # the workbench's password hashes
        "itsdangerous>=2.2,<3",  # the workbench's signed session cookies
    ],
    extras_require={"test": [
        "pytest>=8,<10",
        "hypothesis>=6,<7",
        "httpx2>=2.16,<3",  # Starlette's TestClient
        "playwright>=1.65,<2",  # the workbench's browser test, driving Debian's chromium
        # The scale-out examples in dunning_pipeline/deploy/ are loaded by a test.
        "dagster-docker>=0.29,<0.30",
        "dagster-k8s>=0.29,<0.30",
        "duckdb>=2,<3",  # the benchmark's engine floor; its 2k run is a test
    ], "bench": [
        "duckdb>=2,<3",  # `make bench`: the engine arithmetic as DuckDB SQL (floor b)
        "py-spy>=0.4,<0.5",  # `make bench BENCH_ARGS="--profile DIR"`: where a night spends its time
    ]},
)
