"""The deployment files are valid: promtool checks and unit-tests the rules, compose validates
docker-compose.yml, the dashboards match their generator and name only metrics the service exposes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from devtools import dashboards

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
CONTRACTS = ROOT / "docs" / "contracts.md"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
SERVICES = {"kafka", "kafka-setup", "detector", "replay", "train", "prometheus", "grafana"}


def _compose_command() -> list[str]:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return []


@pytest.fixture(scope="module")
def tools() -> list[str]:
    """promtool and a compose CLI, installed by scripts/check-deploy.sh when missing."""
    if shutil.which("promtool") is None or not _compose_command():
        subprocess.run(["bash", str(ROOT / "scripts" / "check-deploy.sh"), "--install-only"], check=True)
    compose = _compose_command()
    assert shutil.which("promtool") and compose, "promtool or docker compose still missing"
    return compose


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _contract_metrics() -> tuple[set[str], set[str]]:
    """Metric names of the Metrics section of docs/contracts.md (with the centinela_ prefix, except the
    client library's unprefixed process_* metrics), and which of them are histograms."""
    text = CONTRACTS.read_text(encoding="utf-8")
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    histograms: set[str] = set()
    for match in re.finditer(r"`([a-z][a-z0-9_]*)(?:\{[^}]*\})?`(\s*\(histogram)?", section):
        unprefixed = match.group(1).startswith("process_")
        name = match.group(1) if unprefixed else f"centinela_{match.group(1)}"
        names.add(name)
        if match.group(2):
            histograms.add(name)
    return names, histograms


def _known(metric: str, names: set[str], histograms: set[str]) -> bool:
    if metric in names:
        return True
    return any(
        metric.endswith(suffix) and metric.removesuffix(suffix) in histograms for suffix in HISTOGRAM_SUFFIXES
    )


def test_contract_lists_the_metrics() -> None:
    names, histograms = _contract_metrics()
    assert "centinela_incident_open" in names
    assert {"centinela_segment_balance_m3h", "process_resident_memory_bytes"} <= names
    assert {"centinela_scoring_seconds", "centinela_decision_latency_seconds"} <= histograms


def test_prometheus_config_is_valid(tools: list[str]) -> None:
    result = _run(["promtool", "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")])
    # The config must find the rule files, or Prometheus would run without alerts.
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout


def test_alert_rules_are_valid(tools: list[str]) -> None:
    assert RULE_FILES
    _run(["promtool", "check", "rules", *map(str, RULE_FILES)])


@pytest.mark.slow
def test_alert_rule_unit_tests_pass(tools: list[str]) -> None:
    assert RULE_TEST_FILES
    result = _run(["promtool", "test", "rules", *map(str, RULE_TEST_FILES)])
    assert "SUCCESS" in result.stdout


def _alert_names() -> set[str]:
    return {
        match.group(1)
        for path in RULE_FILES
        for match in re.finditer(r"^\s*- alert:\s*(\S+)\s*$", path.read_text(encoding="utf-8"), re.MULTILINE)
    }


def _tested_cases() -> dict[str, set[str]]:
    """alertname -> {"fires", "quiet"} from the alert_rule_test entries of the promtool tests."""
    cases: dict[str, set[str]] = {}
    for path in RULE_TEST_FILES:
        alertname = None
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith("alertname:"):
                alertname = stripped.split(":", 1)[1].strip()
            elif stripped.startswith("exp_alerts:") and alertname:
                kind = "quiet" if stripped.split(":", 1)[1].strip() == "[]" else "fires"
                cases.setdefault(alertname, set()).add(kind)
                alertname = None
    return cases


def test_every_alert_rule_has_a_firing_and_a_quiet_test() -> None:
    alerts = _alert_names()
    assert len(alerts) >= 7
    cases = _tested_cases()
    untested = {name: sorted({"fires", "quiet"} - cases.get(name, set())) for name in alerts}
    assert {name: missing for name, missing in untested.items() if missing} == {}
    assert set(cases) <= alerts, f"tests name alerts that do not exist: {set(cases) - alerts}"


RUNBOOK = ROOT / "docs" / "runbook.md"


def _runbook_sections() -> dict[str, str]:
    """GitHub-style anchor of each ``###`` heading of docs/runbook.md -> the section's text."""
    sections: dict[str, str] = {}
    for block in RUNBOOK.read_text(encoding="utf-8").split("\n### ")[1:]:
        heading, _, body = block.partition("\n")
        anchor = re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")
        sections[anchor] = body.split("\n## ", 1)[0]
    return sections


def _rule_runbooks() -> dict[str, str | None]:
    """alert name -> its runbook_url annotation (None when it has none)."""
    found: dict[str, str | None] = {}
    for path in RULE_FILES:
        for block in re.split(r"^\s*- alert:", path.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]:
            name = block.split(maxsplit=1)[0]
            url = re.search(r'^\s*runbook_url:\s*"([^"]+)"\s*$', block, re.MULTILINE)
            found[name] = url.group(1) if url else None
    return found


def test_every_alert_rule_links_its_runbook_section() -> None:
    runbooks = _rule_runbooks()
    assert set(runbooks) == _alert_names()
    sections = _runbook_sections()
    for name, url in runbooks.items():
        assert url == f"docs/runbook.md#{name.lower()}", name
        body = sections.get(name.lower())
        assert body is not None, f"docs/runbook.md has no section ### {name}"
        for part in ("**Means.**", "**First checks.**", "**What to do.**"):
            assert part in body, f"docs/runbook.md ### {name} lacks {part}"


def test_runbook_sections_are_found_and_a_missing_one_is_not() -> None:
    sections = _runbook_sections()
    assert "centinelatapincidentopen" in sections
    assert "centinela.segments" not in sections
    assert "**What to do.**" in sections["centinelameterfault"]


def test_segment_and_process_rules_exist() -> None:
    alerts = _alert_names()
    assert {
        "CentinelaTapIncidentOpen",
        "CentinelaSegmentBalanceDegraded",
        "CentinelaMeterFault",
        "CentinelaDetectorNotReady",
        "CentinelaDetectorMemoryGrowing",
    } <= alerts


def test_rules_name_only_metrics_of_the_contract() -> None:
    names, histograms = _contract_metrics()
    used = {
        m
        for path in RULE_FILES
        for m in re.findall(r"\b(?:centinela|process)_[a-z0-9_]+(?![\w.])", path.read_text(encoding="utf-8"))
    }
    assert used
    assert {m for m in used if not _known(m, names, histograms)} == set()


def test_dashboards_match_their_generator() -> None:
    assert dashboards.stale_dashboards() == [], "run `python -m devtools.dashboards` and commit the JSON"


def test_a_panel_goes_as_high_as_it_fits_then_as_far_left() -> None:
    # A wide tile beside two stacked columns of small ones, then a full-width row under them all.
    sizes = [(16, 8), (4, 4), (4, 4), (4, 4), (4, 4), (24, 3), (10, 2), (14, 5)]
    assert dashboards.layout(sizes) == [
        (0, 0, 16, 8),
        (16, 0, 4, 4),
        (20, 0, 4, 4),
        (16, 4, 4, 4),
        (20, 4, 4, 4),
        (0, 8, 24, 3),
        (0, 11, 10, 2),
        (10, 11, 14, 5),
    ]


@pytest.mark.parametrize("size", [(0, 4), (25, 4), (4, 0)])
def test_a_panel_size_off_the_grid_is_refused(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match=r"width must be 1\.\.24"):
        dashboards.layout([size])


def test_dashboards_check_flags_an_edited_or_missing_file(tmp_path: Path) -> None:
    written = dashboards.write_dashboards(tmp_path)
    assert dashboards.stale_dashboards(tmp_path) == []
    station = tmp_path / "station.json"
    station.write_text(station.read_text().replace("centinela_score", "centinela_scor"))
    (tmp_path / "service.json").unlink()
    assert sorted(dashboards.stale_dashboards(tmp_path)) == ["service.json", "station.json"]
    assert len(written) == 4


def test_dashboards_name_only_metrics_of_the_contract() -> None:
    names, histograms = _contract_metrics()
    used = set()
    for board in dashboards.load_dashboards():
        for query in dashboards.panel_queries(board):
            for metric in re.findall(r"\b[a-z_:][a-z0-9_:]*(?=\s*[{\[)])", query.expr):
                if metric.startswith("centinela_"):
                    used.add(metric)
                elif metric == "up":
                    assert f'job="{dashboards.DETECTOR_JOB}"' in query.expr, query
    assert "centinela_incident_open" in used
    assert {m for m in used if not _known(m, names, histograms)} == set()


def test_every_dashboard_panel_queries_the_datasource_variable_defaulting_to_the_provisioned_one() -> None:
    provisioned = (
        ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    ).read_text()
    assert f"uid: {dashboards.PROVISIONED_DATASOURCE_UID}" in provisioned
    boards = dashboards.load_dashboards()
    assert {board["uid"] for board in boards} == {
        "centinela-overview",
        "centinela-station",
        "centinela-line",
        "centinela-service",
    }
    variable_ref = {"type": "prometheus", "uid": "${datasource}"}
    for board in boards:
        (variable,) = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
        assert variable["name"] == "datasource" and variable["query"] == "prometheus"
        assert variable["current"]["value"] == dashboards.PROVISIONED_DATASOURCE_UID
        for other in board["templating"]["list"]:
            if other["type"] == "query":
                assert other["datasource"] == variable_ref, other["name"]
        for panel in board["panels"]:
            if panel["type"] == "text":
                continue
            assert panel["targets"], f"{board['title']} / {panel['title']} has no query"
            assert panel["datasource"] == variable_ref, panel["title"]
            assert all(target["datasource"] == variable_ref for target in panel["targets"])


def test_dashboards_name_no_datasource_but_the_variable_default() -> None:
    """Importable anywhere: the provisioned uid appears once per board (the variable's default), so a
    Grafana without it only has to pick another data source in the variable."""
    for path in sorted(dashboards.DASHBOARDS_DIR.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        assert text.count(dashboards.PROVISIONED_DATASOURCE_UID) == 1, path.name
        assert "__inputs" not in text and "${DS_" not in text, path.name


def test_segment_panels_show_open_taps_and_degraded_balances() -> None:
    overview_queries = [q.expr for q in dashboards.panel_queries(dashboards.build(dashboards.OVERVIEW))]
    assert any(
        "centinela_segment_incident_open" in expr and "centinela_segment_degraded" in expr
        for expr in overview_queries
    )
    line = dashboards.build(dashboards.LINE)
    queries = list(dashboards.panel_queries(line))
    used = " ".join(q.expr for q in queries)
    for metric in (
        "centinela_segment_balance_m3h",
        "centinela_segment_statistic",
        "centinela_segment_limit",
        "centinela_segment_degraded",
        "centinela_segment_incident_open",
    ):
        assert metric in used, metric
    assert 'kind="tap"' in used and 'kind="meter_fault"' in used
    # Every per-segment chart follows the segment picker; the tiles and totals show the whole line.
    whole_line = {"Segments", "Open tap incidents", "Degraded segments"}
    for query in queries:
        if "by (segment)" in query.expr and query.panel not in whole_line:
            assert 'segment=~"$segment"' in query.expr, query
    balance = next(p for p in line["panels"] if p["title"] == "Flow balance")
    assert balance["fieldConfig"]["defaults"]["unit"] == "flowcmh"


def test_segment_status_tiles_map_every_state() -> None:
    (mapping,) = dashboards.SEGMENT_STATUS_MAPPINGS
    assert {k: v["text"] for k, v in mapping["options"].items()} == {
        "0": "OK",
        "1": "DEGRADED",
        "2": "TAP",
        "3": "TAP, DEGRADED",
    }


def test_station_board_filters_every_query_by_the_station_variable() -> None:
    board = dashboards.build(dashboards.STATION)
    exprs = [
        query.expr for query in dashboards.panel_queries(board) if not query.panel.startswith("variable")
    ]
    assert exprs
    assert all('station="$station"' in expr for expr in exprs)


def test_grafana_variables_become_plain_promql() -> None:
    expr = 'max(changes(centinela_incident_open{station="$station"}[$__range])) + rate(x[$__rate_interval])'
    assert dashboards.as_promql(expr, {"station": "EST-01"}) == (
        'max(changes(centinela_incident_open{station="EST-01"}[1h])) + rate(x[1m])'
    )
    assert dashboards.as_promql("label_values(centinela_score, station)", {}) == "centinela_score"


def test_alert_rules_scrape_the_job_prometheus_configures() -> None:
    config = (PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8")
    assert f"job_name: {dashboards.DETECTOR_JOB}" in config
    jobs = {m for path in RULE_FILES for m in re.findall(r'job="([^"]+)"', path.read_text(encoding="utf-8"))}
    assert jobs == {dashboards.DETECTOR_JOB}


@pytest.mark.slow
def test_compose_file_is_valid_with_defaults_and_with_env_example(tools: list[str], tmp_path: Path) -> None:
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    for env_file in (empty_env, ROOT / ".env.example"):
        _run(
            [*tools, "--env-file", str(env_file), "--profile", "replay", "--profile", "train", "config", "-q"]
        )
    services = _run(
        [*tools, "--profile", "replay", "--profile", "train", "config", "--services"]
    ).stdout.split()
    assert set(services) == SERVICES


@pytest.mark.slow
def test_compose_rejects_a_broken_file(tools: list[str], tmp_path: Path) -> None:
    """The validation above can fail: an unknown key in a copy of the file is refused."""
    broken = tmp_path / "docker-compose.yml"
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    broken.write_text(text.replace("stop_grace_period: 30s", "stop_grace_periods: 30s"), encoding="utf-8")
    result = subprocess.run(
        [*tools, "-f", str(broken), "--project-directory", str(ROOT), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "stop_grace_periods" in result.stderr + result.stdout


@pytest.fixture(scope="module")
def composecheck() -> Path:
    """deploy/composecheck (compose-go, the loader of docker compose v2), built once into .cache."""
    if shutil.which("go") is None:
        pytest.skip("no Go toolchain to build deploy/composecheck; docker-compose still validates the file")
    built = _run(["bash", str(ROOT / "scripts" / "check-deploy.sh"), "--build-composecheck"])
    return ROOT / built.stdout.strip()


@pytest.mark.slow
def test_compose_v2_loader_accepts_the_file_and_refuses_a_broken_one(
    composecheck: Path, tmp_path: Path
) -> None:
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    for env_file in (empty_env, ROOT / ".env.example"):
        args = ["--env-file", str(env_file), "--profile", "replay", "--profile", "train"]
        result = _run([str(composecheck), *args, str(ROOT / "docker-compose.yml")])
        assert set(result.stdout.split()) == SERVICES
    broken = tmp_path / "docker-compose.yml"
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    broken.write_text(
        text.replace("condition: service_healthy", "condition: service_ready"), encoding="utf-8"
    )
    refused = subprocess.run([str(composecheck), str(broken)], capture_output=True, text=True, check=False)
    assert refused.returncode != 0
    assert "condition" in refused.stderr


def test_env_example_documents_every_variable_compose_reads() -> None:
    compose = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", compose))
    documented = set(
        re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(encoding="utf-8"), re.MULTILINE)
    )
    assert used
    assert used - documented == set()


def test_detector_image_runs_unprivileged_without_tensorflow() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    detector_stage = dockerfile.split("AS detector", 1)[1]
    assert "USER 10001" in detector_stage
    assert "HEALTHCHECK" in detector_stage
    assert "COPY --from=build " in detector_stage  # the stage without the train extra
    build_stage = dockerfile.split("AS build\n", 1)[1].split("FROM ", 1)[0]
    assert "[train]" not in build_stage
    copied = set(re.findall(r"^COPY (\w+) ", build_stage, re.MULTILINE))
    assert copied == {"centinela", "detector", "trainer", "stream", "replay", "simulator", "kafkakit"}
    assert "-c constraints.txt" in build_stage


def test_the_image_copies_every_package_that_is_installed() -> None:
    # A package added to pyproject.toml but not copied into the build stage installs nothing: the
    # image would fail at its first import (kafkakit, which stream and replay import, was one).
    # The developer tooling stays out on purpose: the CLI leaves out a command whose package is absent.
    developer_only = {"bench", "devtools", "evaluation"}
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    installed = {name.rstrip("*") for name in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, flags=re.MULTILINE))
    needed = installed - developer_only
    assert needed and needed <= copied, f"not copied into the image: {sorted(needed - copied)}"
    assert not developer_only & copied
    # BuildKit reads only what the .dockerignore beside the Dockerfile lets into the context.
    ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    let_in = set(re.findall(r"^!(\w+)/$", ignore, flags=re.MULTILINE))
    assert copied <= let_in, f"copied but kept out of the build context: {sorted(copied - let_in)}"
