"""The monitoring role's alert rules, scrape and Alertmanager configuration, checked offline.

The templates are rendered the way the role renders them (Jinja2; the rules template with
the [[ ]] / [% %] delimiters of roles/monitoring/tasks/prometheus.yml) and fed to Debian's
promtool and amtool, which the kit installs on the controller (kit/host.py HOST_PACKAGES).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

from kit.paths import REPO

ROLE = REPO / "roles" / "monitoring"
PROMTOOL_TESTS = REPO / "tests" / "unit" / "promtool"
RUNBOOKS = REPO / "docs" / "runbooks"
# Backups and offsite copies expected: every alert, absence alerts included, is rendered.
EXPECT_ALL = {"monitoring_expect_backups": True, "monitoring_expect_offsite_copy": True}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install prometheus prometheus-alertmanager "
                    "(./podium test installs them)")
    return path


def _defaults(**overrides) -> dict:
    """The role's defaults, plus its internal CA variables as vars/main.yml derives them."""
    values = {**yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()), **overrides}
    extra = "/etc/prometheus/podium-extra-ca.pem" if values["monitoring_extra_ca_source"] else ""
    return {**values, "ansible_managed": "Ansible managed",
            "__monitoring_smtp_ca": values["monitoring_smtp_ca_file"] or extra,
            "__monitoring_probe_ca": values["monitoring_probe_ca_file"] or extra}


def _environment(**delimiters) -> jinja2.Environment:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, **delimiters)
    env.filters["comment"] = lambda text: f"#\n# {text}\n#"
    env.filters["to_json"] = json.dumps
    return env


def render_rules(**overrides) -> str:
    env = _environment(variable_start_string="[[", variable_end_string="]]",
                       block_start_string="[%", block_end_string="%]")
    source = (ROLE / "templates" / "etc" / "prometheus" / "rules" / "podium.rules.yml.j2")
    return env.from_string(source.read_text()).render(**_defaults(**overrides))


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture()
def rules_dir(tmp_path: Path) -> Path:
    """The rendered rules (backups and offsite copies expected, so every alert exists) beside
    the promtool tests."""
    (tmp_path / "podium.rules.yml").write_text(render_rules(**EXPECT_ALL))
    for test_file in PROMTOOL_TESTS.glob("*.yml"):
        shutil.copy(test_file, tmp_path)
    return tmp_path


def _alerts(rules_text: str) -> list[dict]:
    groups = yaml.safe_load(rules_text)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_rules_pass_promtool_check(rules_dir):
    result = _run([_tool("promtool"), "check", "rules", "podium.rules.yml"], rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", sorted(p.name for p in PROMTOOL_TESTS.glob("*.yml")))
def test_rule_unit_tests_pass(rules_dir, test_file):
    result = _run([_tool("promtool"), "test", "rules", test_file], rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_catch_a_wrong_threshold(tmp_path):
    """The tests can fail: with the disk warning at 90% the 85%-full case no longer fires."""
    (tmp_path / "podium.rules.yml").write_text(
        render_rules(**EXPECT_ALL, monitoring_alert_disk_warning_percent=90))
    shutil.copy(PROMTOOL_TESTS / "podium_rules_test.yml", tmp_path)
    result = _run([_tool("promtool"), "test", "rules", "podium_rules_test.yml"], tmp_path)
    assert result.returncode != 0
    assert "DiskSpaceLow" in result.stdout + result.stderr


def test_every_alert_has_a_severity_and_an_existing_runbook():
    for rule in _alerts(render_rules(**EXPECT_ALL)):
        assert rule["labels"]["severity"] in {"critical", "warning", "none"}, rule["alert"]
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("docs/runbooks/"), rule["alert"]
        assert (REPO / url).is_file(), f"{rule['alert']}: {url} does not exist"


def test_every_alert_has_a_case_that_fires_and_one_that_does_not():
    firing, quiet = set(), set()
    for test_file in PROMTOOL_TESTS.glob("*.yml"):
        for test in yaml.safe_load(test_file.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in _alerts(render_rules(**EXPECT_ALL))}
    assert names - {"Watchdog"} <= quiet, f"no quiet case for {names - {'Watchdog'} - quiet}"
    assert names <= firing, f"no firing case for {names - firing}"


def test_for_override_shortens_every_duration():
    for rule in _alerts(render_rules(monitoring_alert_for_override="10s")):
        assert rule.get("for", "10s") == "10s", rule["alert"]


@pytest.mark.parametrize(("alert", "expect"), [
    ("BackupFigureMissing", "monitoring_expect_backups"),
    ("OffsiteCopyFigureMissing", "monitoring_expect_offsite_copy"),
])
def test_absence_alert_only_when_its_figures_are_expected(alert, expect):
    assert alert not in {r["alert"] for r in _alerts(render_rules())}
    assert alert in {r["alert"] for r in _alerts(render_rules(**{expect: True}))}


def _promtool_failure(tmp_path: Path, test_file: str, rules: str) -> str:
    """promtool test rules on ``test_file`` against ``rules``: its output when it fails,
    "" when it passes."""
    (tmp_path / "podium.rules.yml").write_text(rules)
    shutil.copy(PROMTOOL_TESTS / test_file, tmp_path)
    result = _run([_tool("promtool"), "test", "rules", test_file], tmp_path)
    return "" if result.returncode == 0 else result.stdout + result.stderr


def test_offsite_alert_tests_catch_a_wrong_threshold(tmp_path):
    """With a 90-minute limit the push 80 minutes old no longer fires: the test says so."""
    rules = render_rules(**EXPECT_ALL, monitoring_alert_offsite_max_age_minutes=90)
    assert "OffsiteCopyTooOld" in _promtool_failure(tmp_path, "podium_rules_test.yml", rules)


def test_backup_alert_tests_catch_a_per_kind_age(tmp_path):
    """BackupTooOld judges the newest backup of any kind per repository: rules that judged
    each kind alone (a weekly full is days old by design) fail the backup tests."""
    rules = render_rules(**EXPECT_ALL)
    per_kind = rules.replace("max without (kind) (podium_backup_last_success_timestamp_seconds)",
                             "podium_backup_last_success_timestamp_seconds")
    assert per_kind != rules
    assert "BackupTooOld" in _promtool_failure(tmp_path, "podium_rules_backup_test.yml", per_kind)


FULL_AGE = "podium_backup_last_success_timestamp_seconds{kind=\"full\"}"
HOST_LIMIT = "on (instance, stanza) group_left podium_backup_full_max_age_seconds"


@pytest.mark.parametrize(("wrong", "replacement"), [
    # BackupTooOld's any-kind age: fresh differentials would hide the failing full.
    (FULL_AGE, "max without (kind) (podium_backup_last_success_timestamp_seconds)"),
    # A fixed week and a day: the host whose monthly full allows 32 days would fire.
    (HOST_LIMIT, "691200"),
], ids=["any-kind-age", "fixed-limit"])
def test_full_backup_alert_tests_catch_a_wrong_expression(tmp_path, wrong, replacement):
    """BackupFullTooOld judges the full alone, against the limit its host exports
    (decision 0295): rules that do otherwise fail the backup tests."""
    rules = render_rules(**EXPECT_ALL)
    changed = rules.replace(wrong, replacement)
    assert changed != rules
    assert "BackupFullTooOld" in _promtool_failure(tmp_path, "podium_rules_backup_test.yml",
                                                   changed)


def test_offsite_alert_tests_catch_a_summary_without_the_part(tmp_path):
    """The offsite alerts name the part (media or secrets) that failed (decision 0295)."""
    rules = render_rules(**EXPECT_ALL)
    changed = rules.replace("the {{ $labels.part }} copy", "the copies")
    assert changed != rules
    assert "OffsiteCopyFailing" in _promtool_failure(tmp_path, "podium_rules_test.yml", changed)


# --- scrape configuration from the role-to-ports table -----------------------------------

ROLE_PORTS = {
    "common": [{"port": 22, "proto": "tcp", "from": "operator"},
               {"port": 9100, "proto": "tcp", "from": "private", "metrics": "node"}],
    "postgres": [{"port": 5432, "proto": "tcp", "from": "private"},
                 {"port": 9187, "proto": "tcp", "from": "private", "metrics": "postgres"},
                 {"port": 9127, "proto": "tcp", "from": "private", "metrics": "pgbouncer",
                  "metrics_host_var": "postgres_primary_host"}],
    "edge": [{"port": 9113, "proto": "tcp", "from": "private", "metrics": "nginx"}],
    "media": [{"port": 9113, "proto": "tcp", "from": "private", "metrics": "nginx"}],
    "app": [{"port": 8000, "proto": "tcp", "from": "private", "metrics": "app",
             "metrics_path": "/metrics"}],
    "redis": [{"port": 9121, "proto": "tcp", "from": "private", "metrics": "redis"}],
}
GROUPS = {"all": ["db1", "db2", "edge1", "mon1", "solo"], "postgres": ["db1", "db2"],
          "edge": ["edge1", "solo"], "media": ["solo"], "app": [], "monitoring": ["mon1"]}
ADDRESSES = {"db1": "10.0.0.41", "db2": "10.0.0.42", "edge1": "10.0.0.11", "mon1": "10.0.0.81",
             "solo": "10.0.0.5"}


PROBES = [{"name": "edge", "hosts": ["edge1", "solo"], "port": 443, "server_name": "podium.test"},
          {"name": "mail", "hosts": ["solo"], "port": 587, "server_name": "mail.podium.test",
           "starttls": "smtp"}]


def _scrape_config() -> dict:
    env = _environment()
    context = {**_defaults(), "monitoring_role_ports": ROLE_PORTS, "groups": GROUPS,
               "monitoring_tls_probes": PROBES,
               "hostvars": {h: {"podium_private_address": a, "postgres_primary_host": "db2"}
                            for h, a in ADDRESSES.items()},
               "inventory_hostname": "mon1", "monitoring_listen_address": "10.0.0.81",
               "monitoring_external_labels": {"stack": "test"}}
    expression = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    jobs = env.from_string(expression["__monitoring_scrape_jobs"]).render(**context)
    context["__monitoring_scrape_jobs"] = yaml.safe_load(jobs)
    source = ROLE / "templates" / "etc" / "prometheus" / "prometheus.yml.j2"
    return yaml.safe_load(env.from_string(source.read_text()).render(**context))


def _targets(config: dict, job: str) -> dict[str, str]:
    (scrape,) = [s for s in config["scrape_configs"] if s["job_name"] == job]
    return {t["labels"]["host"]: t["targets"][0] for t in scrape["static_configs"]}


def test_every_host_gets_a_node_job_on_its_private_address():
    assert _targets(_scrape_config(), "node") == {
        "db1": "10.0.0.41:9100", "db2": "10.0.0.42:9100", "edge1": "10.0.0.11:9100",
        "mon1": "10.0.0.81:9100", "solo": "10.0.0.5:9100"}


def test_role_exporters_are_scraped_on_that_roles_hosts_only():
    config = _scrape_config()
    assert _targets(config, "postgres") == {"db1": "10.0.0.41:9187", "db2": "10.0.0.42:9187"}
    # edge and media both name the job nginx: one job, the host in both roles scraped once.
    assert _targets(config, "nginx") == {"edge1": "10.0.0.11:9113", "solo": "10.0.0.5:9113"}


def test_an_exporter_of_the_primary_only_is_scraped_on_the_host_its_variable_names():
    """PgBouncer's exporter: metrics_host_var postgres_primary_host (db2 after a failover)."""
    assert _targets(_scrape_config(), "pgbouncer") == {"db2": "10.0.0.42:9127"}


def test_roles_without_hosts_get_no_job():
    jobs = {s["job_name"] for s in _scrape_config()["scrape_configs"]}
    assert "app" not in jobs and "redis" not in jobs
    assert {"prometheus", "alertmanager", "node", "postgres", "nginx"} <= jobs


def test_scrape_config_passes_promtool(tmp_path):
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(_scrape_config()))
    result = _run([_tool("promtool"), "check", "config", "--syntax-only", str(path)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# --- Alertmanager --------------------------------------------------------------------------

def _alertmanager(**overrides) -> str:
    source = ROLE / "templates" / "etc" / "prometheus" / "alertmanager.yml.j2"
    return _environment().from_string(source.read_text()).render(**_defaults(**overrides))


MAIL = {"monitoring_smtp_smarthost": "10.0.0.61:587",
        "monitoring_smtp_from": "alerts@podium.test",
        "monitoring_smtp_username": "alerts@podium.test", "monitoring_smtp_password": "secret",
        "monitoring_smtp_tls_server_name": "mail.podium.test",
        "monitoring_mail_to": "ops@podium.test"}


@pytest.mark.parametrize("settings", [
    {},
    MAIL,
    {**MAIL, "monitoring_smtp_ca_file": "/etc/ssl/podium-lab-ca.pem",
     "monitoring_webhook_url": "http://10.0.0.1:9199/alerts",
     "monitoring_deadmansswitch_url": "https://dms.example.org/ping/abc"},
], ids=["no-delivery", "mail", "mail-webhook-deadmansswitch"])
def test_alertmanager_config_passes_amtool(tmp_path, settings):
    path = tmp_path / "alertmanager.yml"
    path.write_text(_alertmanager(**settings))
    result = _run([_tool("amtool"), "check-config", str(path)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_extra_ca_is_trusted_for_submission_and_probes():
    config = yaml.safe_load(_alertmanager(**MAIL, monitoring_extra_ca_source="/x/root.pem"))
    (mail,) = config["receivers"][0]["email_configs"]
    assert mail["tls_config"]["ca_file"] == "/etc/prometheus/podium-extra-ca.pem"
    source = ROLE / "templates" / "etc" / "prometheus" / "blackbox.yml.j2"
    modules = yaml.safe_load(_environment().from_string(source.read_text()).render(
        **_defaults(monitoring_tls_probes=PROBES, monitoring_extra_ca_source="/x/root.pem")))
    assert modules["modules"]["tls_edge"]["tcp"]["tls_config"]["ca_file"] == (
        "/etc/prometheus/podium-extra-ca.pem")


def test_a_dead_host_silences_its_other_alerts():
    config = yaml.safe_load(_alertmanager(**MAIL))
    assert config["route"]["group_by"] == ["alertname"]
    host_down = [r for r in config["inhibit_rules"]
                 if r["source_matchers"] == ['alertname = "HostDown"']]
    assert host_down and host_down[0]["equal"] == ["host"]


def test_alertmanager_routing_with_amtool(tmp_path):
    """amtool's own router: HostDown mails the operator, Watchdog goes only to the switch."""
    path = tmp_path / "alertmanager.yml"
    path.write_text(_alertmanager(**MAIL, monitoring_deadmansswitch_url="https://d.example/p"))

    def route(*labels: str) -> str:
        result = _run([_tool("amtool"), "config", "routes", "test", f"--config.file={path}",
                       *labels], tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert route("alertname=HostDown", "severity=critical", "host=web1") == "operator"
    assert route("alertname=Watchdog", "severity=none") == "deadmansswitch"
    assert route("alertname=DiskSpaceLow", "severity=warning") == "operator"


def test_the_watchdog_is_resent_every_deadmansswitch_interval():
    """The switch's ping period: 5 minutes by default, shorter for the lab's fault test."""
    for interval in ("5m", "15s"):
        config = yaml.safe_load(_alertmanager(**MAIL, monitoring_deadmansswitch_url="http://d/p",
                                              monitoring_deadmansswitch_interval=interval))
        (watchdog,) = [r for r in config["route"]["routes"]
                       if r["matchers"] == ['alertname = "Watchdog"']]
        assert watchdog["receiver"] == "deadmansswitch"
        assert watchdog["repeat_interval"] == watchdog["group_interval"] == interval


def test_tls_probes_go_through_the_loopback_blackbox_exporter():
    (edge,) = [s for s in _scrape_config()["scrape_configs"] if s["job_name"] == "tls-edge"]
    assert edge["metrics_path"] == "/probe"
    assert edge["params"] == {"module": ["tls_edge"]}
    assert [t["targets"] for t in edge["static_configs"]] == [["10.0.0.11:443"], ["10.0.0.5:443"]]
    assert edge["relabel_configs"][-1]["replacement"] == "127.0.0.1:9115"


def test_blackbox_modules_check_the_certificate_name():
    source = ROLE / "templates" / "etc" / "prometheus" / "blackbox.yml.j2"
    modules = yaml.safe_load(_environment().from_string(source.read_text()).render(
        **_defaults(monitoring_tls_probes=PROBES)))["modules"]
    assert modules["tls_edge"]["tcp"]["tls"] is True
    assert modules["tls_edge"]["tcp"]["tls_config"]["server_name"] == "podium.test"
    steps = modules["tls_mail"]["tcp"]["query_response"]
    assert {"starttls": True} in steps
    assert modules["tls_mail"]["tcp"]["tls_config"]["server_name"] == "mail.podium.test"
