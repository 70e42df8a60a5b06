"""Role templates rendered by Ansible on the controller, with the roles' defaults and the
kit's group_vars: the edge's MTA-STS site, and DKIM rotation (every standby selector in the
zone, only the active one in OpenDKIM)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml
from test_ansible_tree import _playbook

from kit import dkim
from kit.dns_records import dkim_from_secrets, dkim_value, mta_sts_policy, records, txt
from kit.paths import REPO
from kit.stack import load_stack

EDGE = REPO / "roles" / "edge"
GROUP_VARS = REPO / "playbooks" / "group_vars" / "all"


def _render(tmp_path: Path, vars_files: list[Path], overrides: dict, tasks: list[dict],
            groups: tuple[str, ...] = ()) -> None:
    """Run ``tasks`` on localhost with ``vars_files`` then ``overrides`` (the last wins) as
    its variables, localhost being in ``groups``; fails the test on a failed play."""
    (tmp_path / "overrides.yml").write_text(yaml.safe_dump(overrides))
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {
        "hosts": {"localhost": {"ansible_connection": "local",
                                "ansible_python_interpreter": sys.executable}},
        "children": {group: {"hosts": {"localhost": None}} for group in groups}}}))
    plays = [{"name": "Render role templates", "hosts": "all", "gather_facts": False,
              "vars_files": [str(p) for p in vars_files] + [str(tmp_path / "overrides.yml")],
              "tasks": tasks}]
    result, report = _playbook(tmp_path, plays, inventory=str(inventory))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert not report.get("failures")


def _template(src: Path, dest: Path) -> dict:
    return {"name": f"Render {src.name}",
            "ansible.builtin.template": {"src": str(src), "dest": str(dest), "mode": "0644"}}


# --- MTA-STS at the edge -------------------------------------------------------------------

EDGE_VARS = {"edge_platform_upstreams": ["10.0.0.20:8080"],
             "edge_media_upstreams": ["10.0.0.51:8081"]}


def _render_edge(tmp_path: Path, policy: str) -> tuple[str, list[str]]:
    """The edge's nginx site and its certificate names, for ``policy``."""
    _render(tmp_path, [EDGE / "defaults" / "main.yml", EDGE / "vars" / "main.yml"],
            {**EDGE_VARS, "edge_mta_sts_policy": policy}, [
                _template(EDGE / "templates/etc/nginx/conf.d/podium-edge.conf.j2",
                          tmp_path / "site.conf"),
                {"name": "Write the certificate names", "ansible.builtin.copy": {
                    "content": "{{ __edge_certificate_names | to_json }}",
                    "dest": str(tmp_path / "names.json"), "mode": "0644"}},
            ])
    names = yaml.safe_load((tmp_path / "names.json").read_text())
    return (tmp_path / "site.conf").read_text(), names


def _server_block(site: str, name: str) -> str:
    blocks = [b for b in re.findall(r"^server \{\n.*?^\}", site, re.S | re.M)
              if re.search(rf"^\s*server_name {re.escape(name)};", b, re.M)]
    assert len(blocks) == 1, f"expected one server block for {name}, found {len(blocks)}"
    return blocks[0]


def test_edge_serves_the_mta_sts_policy_text_as_plain_text_without_redirects(tmp_path):
    policy = mta_sts_policy(load_stack("local"))
    site, names = _render_edge(tmp_path, policy)
    block = _server_block(site, "mta-sts.podium.test")
    location = re.search(r"location = /\.well-known/mta-sts\.txt \{(.*?)\}", block, re.S)
    assert location, block
    assert "default_type text/plain;" in location.group(1)
    (returned,) = re.findall(r'return 200 "(.*)";', location.group(1))
    # nginx turns \r and \n in a quoted string into CR and LF.
    assert returned.replace("\\r", "\r").replace("\\n", "\n") == policy
    assert "proxy_pass" not in block and "301" not in block
    assert "mta-sts.podium.test" in names
    assert names[:2] == ["podium.test", "media.podium.test"]


def test_edge_without_a_policy_has_no_mta_sts_site_or_name(tmp_path):
    site, names = _render_edge(tmp_path, "")
    assert "mta-sts" not in site
    assert names == ["podium.test", "media.podium.test"]


@pytest.mark.parametrize("policy", [
    "version: STSv1\r\nmode: enforce\r\nmx: $host\r\n",       # an nginx variable
    'version: STSv1\r\nmode: enforce"; return 301 "x\r\n',   # breaks out of the string
])
def test_edge_refuses_a_policy_nginx_would_misread(tmp_path, policy):
    plays = [{"name": "Apply the edge role with a bad policy", "hosts": "all",
              "gather_facts": False, "roles": ["edge"],
              "vars": {**EDGE_VARS, "edge_mta_sts_policy": policy,
                       "edge_cache_metrics_listen_address": "127.0.0.1"}}]
    result, report = _playbook(tmp_path, plays)
    assert result.returncode != 0
    (failure,) = report["failures"]
    assert "edge_mta_sts_policy" in failure["message"]
    assert report["changed"] == []


# --- UI languages at the edge ----------------------------------------------------------------

def test_edge_sends_each_catalogued_language_to_the_app_and_keys_the_cache_on_it(tmp_path):
    """The kit's edge_languages are the app's gettext catalogues, and the rendered map turns
    each one's Accept-Language into its own value (an empty list once sent every reader, an
    Arabic one too, to the app as English: docs/lab.md)."""
    catalogues = sorted(p.parent.parent.name for p in
                        (REPO / "app/src/podium_app/web/locale").glob("*/LC_MESSAGES/messages.po"))
    assert {"ar", "en", "fr"} <= set(catalogues)
    # The kit's expression as written, from the playbooks' folder (playbook_dir is a magic
    # variable: a play's own vars cannot set it, and this play lives in tmp_path).
    kit = yaml.safe_load((GROUP_VARS / "edge.yml").read_text())["edge_languages"].replace(
        "playbook_dir", repr(str(REPO / "playbooks")))
    _render(tmp_path, [EDGE / "defaults" / "main.yml", EDGE / "vars" / "main.yml"],
            {**EDGE_VARS, "edge_languages": kit},
            [_template(EDGE / "templates/etc/nginx/conf.d/podium-edge.conf.j2",
                       tmp_path / "site.conf")])
    site = (tmp_path / "site.conf").read_text()
    language_map = re.search(r"map \$http_accept_language \$edge_language \{(.*?)\}", site, re.S)
    assert language_map, site
    entries = dict(re.findall(r'^\s*"~\*\^\\s\*(\w+)\(.*?"\s+(\w+);', language_map.group(1), re.M))
    assert entries == {code: code for code in catalogues if code != "en"}
    assert "proxy_cache_key $scheme$host$request_uri$edge_language$edge_encoding;" in site
    assert "proxy_set_header Accept-Language $edge_language;" in site


# --- DKIM rotation ---------------------------------------------------------------------------

ACTIVE, STANDBY = "podium2027", ["podium1", "podium2028"]


@pytest.fixture(scope="module")
def rotation(tmp_path_factory) -> Path:
    """The mail role's key tasks and the zone and OpenDKIM templates, rendered mid-rotation
    (ACTIVE signs, STANDBY published) through the kit's group_vars; the folder of results."""
    tmp_path = tmp_path_factory.mktemp("rotation")
    secrets = tmp_path / "secrets"
    _render(tmp_path, [
        REPO / "roles" / "dns" / "defaults" / "main.yml",
        REPO / "roles" / "mail" / "defaults" / "main.yml",
        GROUP_VARS / "mail.yml", GROUP_VARS / "dns.yml",
    ], {
        "podium_domain": "podium.test", "podium_secrets_dir": str(secrets),
        "podium_dns_records": [], "dns_nameservers": [{"name": "mail1"}],
        "mail_dns_resolvers": [],
        "mail_dkim_selector": ACTIVE, "mail_dkim_standby_selectors": STANDBY,
    }, [
        {"name": "Make the DKIM keys as site.yml does", "ansible.builtin.include_role": {
            "name": "mail", "tasks_from": "dkim_key"}},
        _template(REPO / "roles/dns/templates/etc/nsd/zones/forward.zone.j2", tmp_path / "zone"),
        _template(REPO / "roles/mail/templates/etc/opendkim.conf.j2", tmp_path / "opendkim.conf"),
    ], groups=("mail", "dns"))
    return tmp_path


def _zone_txt(zone: str, name: str) -> str | None:
    found = re.search(rf"^{re.escape(name)}\t\d+\tIN\tTXT\t(.*)$", zone, re.M)
    return found.group(1) if found else None


def test_every_dkim_selector_of_a_rotation_is_published_in_the_zone(rotation):
    zone = (rotation / "zone").read_text()
    for selector in [ACTIVE, *STANDBY]:
        pem = (rotation / "secrets" / "dkim" / f"{selector}.pub").read_text()
        assert _zone_txt(zone, f"{selector}._domainkey") == txt(dkim_value(pem)), selector
    assert len({_zone_txt(zone, f"{s}._domainkey") for s in [ACTIVE, *STANDBY]}) == 3


def test_only_the_active_dkim_selector_signs(rotation):
    conf = (rotation / "opendkim.conf").read_text()
    settings = dict(re.findall(r"^(\w+)\t+(.*)$", conf, re.M))
    assert settings["Selector"] == ACTIVE
    assert settings["KeyFile"] == f"/etc/opendkim/keys/{ACTIVE}.private"
    assert not any(selector in conf for selector in STANDBY)
    # The only key file the role installs on the mail host is the active one.
    tasks = yaml.safe_load((REPO / "roles" / "mail" / "tasks" / "dkim.yml").read_text())
    copies = [t["ansible.builtin.copy"]["src"] for t in tasks if "ansible.builtin.copy" in t]
    assert copies == ["{{ mail_dkim_key_dir }}/{{ mail_dkim_selector }}.key"]


def test_cloud_zone_publishes_the_same_dkim_records_as_the_lab(rotation, tmp_path, monkeypatch):
    mail_vars = tmp_path / "mail.yml"
    mail_vars.write_text(yaml.safe_dump({"mail_dkim_selector": ACTIVE,
                                         "mail_dkim_standby_selectors": STANDBY}))
    monkeypatch.setattr(dkim, "MAIL_VARS", mail_vars)
    stack = load_stack("local")
    ipv4 = {h.name: str(h.address) for h in stack.hosts}
    keys = dkim_from_secrets(rotation / "secrets", dkim.selectors())
    cloud = {r.name: r.values[0] for r in records(stack, ipv4, {}, keys) if "_domainkey" in r.name}
    zone = (rotation / "zone").read_text()
    assert cloud == {name: _zone_txt(zone, name)
                     for name in (f"{s}._domainkey" for s in [ACTIVE, *STANDBY])}
