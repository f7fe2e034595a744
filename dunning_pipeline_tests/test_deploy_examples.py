"""The example dagster.yaml files for scaling out (dunning_pipeline/deploy/) load as real Dagster
instances on PostgreSQL, with the run launcher they name, and keep the nightly limit."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.test_utils import environ

from dunning_pipeline_tests.conftest import production_instance_env

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "dunning_pipeline" / "deploy"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: test, user: {token: not-a-real-token}}]
contexts: [{name: test, context: {cluster: test, user: test, namespace: dunning}}]
current-context: test
"""


@pytest.mark.parametrize(("example", "launcher"), [
    ("docker.dagster.yaml", "DockerRunLauncher"),
    ("k8s.dagster.yaml", "K8sRunLauncher"),
])
def test_example_instance_loads_with_its_run_launcher(example, launcher, tmp_path, pg_database):
    home = tmp_path / "home"
    home.mkdir()
    text = (DEPLOY / example).read_text(encoding="utf-8")
    if launcher == "K8sRunLauncher":
        # In a cluster the launcher reads the pod's service account; here a kubeconfig stands in
        # for it (nothing else of the example changes, and no cluster is contacted).
        assert "load_incluster_config: true" in text
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(KUBECONFIG, encoding="utf-8")
        text = text.replace("load_incluster_config: true",
                            f"load_incluster_config: false\n    kubeconfig_file: {kubeconfig}")
    (home / "dagster.yaml").write_text(text, encoding="utf-8")
    env = {**production_instance_env(home, pg_database), "DUNNING_IMAGE": "registry.acme.example/dunning_pipeline:1.0"}
    with environ(env), dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_launcher).__name__ == launcher
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.run_retries_enabled
        image = (instance.run_launcher.image if launcher == "DockerRunLauncher"
                 else instance.run_launcher.job_image)
        assert image == env["DUNNING_IMAGE"]
    limits = yaml.safe_load((DEPLOY / example).read_text())["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert {"key": "dunning/job", "value": "nightly_dunning", "limit": 1} in limits
