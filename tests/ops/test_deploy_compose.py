"""deploy/compose.yaml (Prometheus and Grafana on the guide's monitoring ports) cannot run here: it is
parsed and checked instead - services, ports from .env, mounted files that exist, the dashboard provisioned."""

from __future__ import annotations

import json
import re

import yaml

from agent.config import ENV_KEYS, PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def interpolate(text: str, env: dict[str, str]) -> str:
    """What docker compose does to ``${NAME:-default}`` with ``--env-file .env``."""
    return VARIABLE.sub(lambda m: env.get(m.group(1), m.group(2) or ""), text)


def mounts(service: dict) -> dict[str, str]:
    """Bind mounts of a service: container path -> host path (relative to deploy/)."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            out[target] = source
    return out


def test_services_and_their_ports_come_from_the_guide_variables():
    doc = compose()
    assert set(doc["services"]) == {"prometheus", "grafana"}
    for service in doc["services"].values():
        image, _, tag = service["image"].partition(":")
        assert tag and tag != "latest", f"{image} is pinned to a release"
    used = set(VARIABLE.findall((DEPLOY / "compose.yaml").read_text()))
    assert {name for name, _ in used} == {"PROMETHEUS_PORT", "GRAFANA_PORT"}
    assert all(name in ENV_KEYS for name, _ in used)  # keys .env accepts, so one .env serves both
    grafana = doc["services"]["grafana"]
    assert interpolate(grafana["environment"]["GF_SERVER_HTTP_PORT"], {"GRAFANA_PORT": "3000"}) == "3000"
    assert interpolate(grafana["environment"]["GF_SERVER_HTTP_PORT"], {}) == "3000"


def test_prometheus_scrapes_the_agent_on_prometheus_port():
    doc = compose()
    prometheus = doc["services"]["prometheus"]
    [config] = prometheus["configs"]
    assert "--config.file=" + config["target"] in prometheus["command"]
    scrape = yaml.safe_load(interpolate(doc["configs"][config["source"]]["content"], {"PROMETHEUS_PORT": "8000"}))
    [job] = scrape["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8000"]
    default = yaml.safe_load(interpolate(doc["configs"][config["source"]]["content"], {}))
    shipped = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert default["scrape_configs"][0]["static_configs"] == shipped["scrape_configs"][0]["static_configs"]


def test_mounted_files_exist_and_the_dashboard_is_provisioned():
    grafana = compose()["services"]["grafana"]
    binds = mounts(grafana)
    for source in binds.values():
        assert (DEPLOY / source).exists(), source
    provisioning = {target: DEPLOY / source for target, source in binds.items()}
    [provider_file] = (provisioning["/etc/grafana/provisioning/dashboards"]).glob("*.yaml")
    [provider] = yaml.safe_load(provider_file.read_text())["providers"]
    folder = provider["options"]["path"]
    dashboards = [target for target in binds if target.startswith(folder + "/") and target.endswith(".json")]
    assert dashboards == [f"{folder}/b3-agent-dashboard.json"]
    dashboard = json.loads(provisioning[dashboards[0]].read_text())
    # panels name their data source ${DS_PROMETHEUS}: a provisioned dashboard resolves it through a variable
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    [sources_file] = (provisioning["/etc/grafana/provisioning/datasources"]).glob("*.yaml")
    [source] = yaml.safe_load(sources_file.read_text())["datasources"]
    assert source["type"] == "prometheus"
    listen = next(a for a in compose()["services"]["prometheus"]["command"] if a.startswith("--web.listen-address="))
    assert source["url"] == "http://" + listen.split("=", 1)[1]
