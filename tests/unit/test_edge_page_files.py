"""The edge's hot pages service (roles/edge, podium-edge-pages, decision 0304): which log
lines promote a page, which stored copies it serves as files, and that no file exists for a
second past the copy's own expiry. Cache files are built here in nginx's format (version 5),
the layout checked on the lab's Debian 13 nginx (docs/perf.md, session 17)."""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest
import yaml

from kit.paths import REPO

SCRIPT = REPO / "roles/edge/files/usr/local/sbin/podium-edge-pages"
_loader = importlib.machinery.SourceFileLoader("podium_edge_pages", str(SCRIPT))
_spec = importlib.util.spec_from_loader("podium_edge_pages", _loader)
pages = importlib.util.module_from_spec(_spec)
sys.modules["podium_edge_pages"] = pages  # dataclasses look their module up there
_loader.exec_module(pages)

DEFAULTS = yaml.safe_load((REPO / "roles/edge/defaults/main.yml").read_text())
EXPECTED = pages.Expected(DEFAULTS["edge_page_files_content_type"],
                          DEFAULTS["edge_page_files_cache_control"],
                          DEFAULTS["edge_page_files_csp"])
PAGE = pages.Page("podium.test", "en", "br", "/@alice/123", "/@alice/123")
NOW = 1_800_000_000
BODY = b"\x1b\x00compressed page"


def _headers(**changes: str | None) -> dict[str, str]:
    headers = {"Server": "nginx", "Date": "Tue, 08 Dec 2026 02:34:20 GMT",
               "Content-Type": EXPECTED.content_type, "Transfer-Encoding": "chunked",
               "Connection": "keep-alive", "Vary": "Accept-Encoding", "etag": 'W/"d7b4"',
               "cache-control": EXPECTED.cache_control, "vary ": "Accept-Language",
               "content-security-policy": EXPECTED.csp, "Content-Encoding": "br"}
    headers.update(changes)
    return {name: value for name, value in headers.items() if value is not None}


def _cache_file(cache_dir: Path, page, valid_sec: int, *, status: str = "200 OK",
                key: str | None = None, body: bytes = BODY, **headers: str | None) -> Path:
    """A page cache entry as nginx writes it: the binary header, "\\nKEY: ...\\n", the
    stored response header block, the body."""
    key_line = b"\0" * 4 + b"\nKEY: " + (key or page.key).encode() + b"\n"
    head = f"HTTP/1.1 {status}\r\n" + "".join(
        f"{name.strip()}: {value}\r\n" for name, value in _headers(**headers).items()) + "\r\n"
    header_start = pages.CACHE_HEADER.size + len(key_line)
    body_start = header_start + len(head)
    fixed = pages.CACHE_HEADER.pack(5, valid_sec, 0, 0, 0, NOW - 5, 0, 0, header_start,
                                    body_start, 0, b"", 0, b"", b"")
    path = page.cache_file(cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fixed + key_line + head.encode() + body)
    return path


@pytest.fixture()
def files(tmp_path) -> pages.PageFiles:
    (tmp_path / "root").mkdir()
    return pages.PageFiles(tmp_path / "root", tmp_path / "cache", EXPECTED, threshold=3,
                           window=10, hold=300)


def _linked_seconds(root: Path, page=PAGE) -> list[int]:
    return sorted(int(d.name) for d in root.iterdir()
                  if d.name.isdigit() and (root / page.file_name(int(d.name))).is_file())


# --- the cache file's place and format ------------------------------------------------------

def test_the_cache_file_path_is_nginx_levels_1_2_of_the_md5_of_the_key(tmp_path):
    digest = hashlib.md5(b"httpspodium.test/@alice/123enbr").hexdigest()
    assert PAGE.cache_file(tmp_path) == tmp_path / digest[-1] / digest[-3:-1] / digest


def test_the_file_name_is_the_one_nginx_looks_up(tmp_path):
    """$edge_page_file in podium-edge.conf: /$second/$language-$encoding$uri.html."""
    site = (REPO / "roles/edge/templates/etc/nginx/conf.d/podium-edge.conf.j2").read_text()
    assert re.search(r"0GET\s+/\$edge_page_second/\$edge_language-\$edge_encoding\$uri\.html;",
                     site)
    assert PAGE.file_name(7) == "7/en-br/@alice/123.html"
    landing = pages.Page("podium.test", "fr", "", "/", "/")
    assert landing.file_name(7) == "7/fr-/.html"  # never a folder nginx would list


def test_a_fresh_well_formed_copy_is_read(tmp_path):
    path = _cache_file(tmp_path, PAGE, NOW + 30)
    copy = pages.read_copy(path, PAGE, EXPECTED)
    assert (copy.valid_sec, copy.body) == (NOW + 30, BODY)


@pytest.mark.parametrize("change, reason", [
    ({"status": "404 Not Found"}, "stored status"),
    ({"key": "httpspodium.test/@alice/1234enbr"}, "another key"),
    ({"Set_Cookie": "session=abc"}, "headers differ"),
    ({"cache-control": "private, no-store"}, "headers differ"),
    ({"content-security-policy": "default-src *"}, "headers differ"),
    ({"Content-Type": "application/json"}, "headers differ"),
    ({"Content-Encoding": "gzip"}, "headers differ"),
    ({"Content-Encoding": None}, "headers differ"),
    ({"vary ": "Cookie"}, "varies on"),
])
def test_a_copy_nginx_would_send_with_other_headers_is_never_a_file(tmp_path, change, reason):
    """The file location sends fixed headers: any other answer stays with the proxy cache."""
    change = {name.replace("_", "-"): value for name, value in change.items()}
    path = _cache_file(tmp_path, PAGE, NOW + 30, **change)
    with pytest.raises(pages.NotServable, match=reason):
        pages.read_copy(path, PAGE, EXPECTED)


def test_an_unencoded_copy_has_no_content_encoding(tmp_path):
    plain = pages.Page("podium.test", "en", "", "/", "/")
    path = _cache_file(tmp_path, plain, NOW + 30, **{"Content-Encoding": None})
    assert pages.read_copy(path, plain, EXPECTED).body == BODY


def test_another_cache_format_version_is_refused(tmp_path):
    path = _cache_file(tmp_path, PAGE, NOW + 30)
    data = bytearray(path.read_bytes())
    data[0] = 6
    path.write_bytes(bytes(data))
    with pytest.raises(pages.NotServable, match="version 6"):
        pages.read_copy(path, PAGE, EXPECTED)


def test_the_role_expects_exactly_the_apps_public_page_headers():
    """The file location's headers are the app's for public pages: were they to drift apart,
    no page would be promoted (safe, but the edge would lose the files' gain silently)."""
    from podium_app.web import render

    assert EXPECTED.cache_control == render.PUBLIC_CACHE
    assert EXPECTED.csp == render.CSP
    assert EXPECTED.content_type == "text/html; charset=utf-8"


# --- which pages are promoted -----------------------------------------------------------------

@pytest.mark.parametrize("line", [
    "en br /@alice/123?x=1 /@alice/123",          # a query string
    "de br /@alice/123 /@alice/123",              # not one of the edge's languages
    "en zstd /@alice/123 /@alice/123",            # not an encoding the cache keeps
    "en br /%0A /\\x0A",                          # nginx escaped the name: cannot be rebuilt
    "en br /a/../b /a/../b",
    "en br /@alice/123",                          # cut short
])
def test_candidate_lines_that_cannot_be_a_file_are_ignored(line):
    assert pages.parse_candidate(line, "podium.test", {"en", "fr"}) is None


def test_a_candidate_line_is_the_page_nginx_keyed():
    page = pages.parse_candidate("fr - /a%20b /a b\n", "podium.test", {"en", "fr"})
    assert page == pages.Page("podium.test", "fr", "", "/a%20b", "/a b")
    assert page.key == "httpspodium.test/a%20bfr"


def test_a_page_is_promoted_at_the_threshold_within_the_window(files):
    files.saw(PAGE, NOW)
    files.saw(PAGE, NOW + 11)  # the first has left the window
    assert PAGE not in files.promoted
    files.saw(PAGE, NOW + 12)
    assert PAGE not in files.promoted
    files.saw(PAGE, NOW + 13)
    assert PAGE in files.promoted


def test_a_promoted_page_cold_for_the_hold_is_dropped(files):
    for t in range(3):
        files.saw(PAGE, NOW + t)
    files.refresh(NOW + 2 + 300)
    assert PAGE in files.promoted
    files.refresh(NOW + 2 + 301)
    assert PAGE not in files.promoted


# --- files only while the copy is fresh ---------------------------------------------------

def _promote(files, page=PAGE, at=NOW):
    for _ in range(files.threshold):
        files.saw(page, at)


def test_a_copy_is_linked_for_each_second_it_is_fresh_and_not_one_more(files):
    """nginx answers HIT from a copy while valid_sec >= now: so does the file."""
    _cache_file(files.cache_dir, PAGE, NOW + 30)
    _promote(files)
    files.refresh(NOW + 0.4)
    assert _linked_seconds(files.root) == list(range(NOW, NOW + 31))
    assert (files.root / PAGE.file_name(NOW + 12)).read_bytes() == BODY
    assert oct((files.root / PAGE.file_name(NOW)).stat().st_mode & 0o777) == "0o644"


def test_an_expired_copy_is_not_linked(files):
    _cache_file(files.cache_dir, PAGE, NOW - 1)  # stale: nginx answers STALE/UPDATING
    _promote(files)
    files.refresh(NOW)
    assert _linked_seconds(files.root) == []


def test_past_seconds_and_their_bodies_are_swept(files):
    _cache_file(files.cache_dir, PAGE, NOW + 30)
    _promote(files)
    files.refresh(NOW)
    files.refresh(NOW + 20.5)
    assert _linked_seconds(files.root) == list(range(NOW + 20, NOW + 31))
    files.refresh(NOW + 31)
    assert _linked_seconds(files.root) == []
    assert list((files.root / ".store").iterdir()) == []


def test_a_refreshed_copy_is_linked_when_nginx_stores_it(files):
    _cache_file(files.cache_dir, PAGE, NOW + 30)
    _promote(files)
    files.refresh(NOW)
    _cache_file(files.cache_dir, PAGE, NOW + 61, body=b"new")  # the background update
    files.refresh(NOW + 31.2)
    assert _linked_seconds(files.root) == list(range(NOW + 31, NOW + 62))
    assert (files.root / PAGE.file_name(NOW + 40)).read_bytes() == b"new"


def test_a_copy_replaced_early_by_one_not_servable_loses_its_files(files):
    _cache_file(files.cache_dir, PAGE, NOW + 30)
    _promote(files)
    files.refresh(NOW)
    path = _cache_file(files.cache_dir, PAGE, NOW + 30, status="404 Not Found")
    os.utime(path, ns=(1, 1))  # another stamp, as nginx's rename gives
    files.refresh(NOW + 5)
    assert _linked_seconds(files.root) == []


def test_a_copy_replaced_early_by_a_shorter_one_loses_the_seconds_past_it(files):
    _cache_file(files.cache_dir, PAGE, NOW + 30)
    _promote(files)
    files.refresh(NOW)
    _cache_file(files.cache_dir, PAGE, NOW + 10, body=b"newer")
    files.refresh(NOW + 5)
    assert _linked_seconds(files.root) == list(range(NOW + 5, NOW + 11))
    assert (files.root / PAGE.file_name(NOW + 6)).read_bytes() == b"newer"


def test_a_page_missing_from_the_cache_gets_no_file(files):
    _promote(files)
    files.refresh(NOW)
    assert _linked_seconds(files.root) == []
    assert PAGE in files.promoted


# --- the candidate log ------------------------------------------------------------------------

def test_the_follower_reads_new_lines_only_and_follows_a_rotation(tmp_path):
    log = tmp_path / "candidates.log"
    log.write_text("old line\n")
    follower = pages.Follower(log)
    assert follower.lines() == []
    with log.open("a") as out:
        out.write("first\nhalf")
    assert follower.lines() == ["first"]
    with log.open("a") as out:
        out.write(" done\n")
    assert follower.lines() == ["half done"]
    log.rename(tmp_path / "candidates.log.1")  # logrotate; nginx reopens on USR1
    log.write_text("after rotation\n")
    assert follower.lines() == ["after rotation"]
    log.write_text("")  # truncated in place (copytruncate)
    with log.open("a") as out:
        out.write("x\n")
    assert follower.lines() == ["x"]


def test_the_service_refuses_a_root_that_is_not_a_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        pages.main(["--root", str(tmp_path / "missing"), "--cache-dir", str(tmp_path),
                    "--candidates", str(tmp_path / "log"), "--host", "podium.test",
                    "--languages", "en", "--content-type", "t", "--cache-control", "c",
                    "--csp", "p"])
    assert stop.value.code == 2
    assert f"--root {tmp_path / 'missing'} is not a folder" in capsys.readouterr().err


# --- the role ---------------------------------------------------------------------------------

def test_without_page_files_every_request_goes_to_the_page_cache(tmp_path):
    from test_role_templates import EDGE, EDGE_VARS, _render, _server_block, _template

    sites = {}
    for enabled in (True, False):
        _render(tmp_path, [EDGE / "defaults" / "main.yml", EDGE / "vars" / "main.yml"],
                {**EDGE_VARS, "edge_page_files": enabled},
                [_template(EDGE / "templates/etc/nginx/conf.d/podium-edge.conf.j2",
                           tmp_path / f"site-{enabled}.conf")])
        sites[enabled] = _server_block((tmp_path / f"site-{enabled}.conf").read_text(),
                                       "podium.test")
    on = re.search(r"location / \{(.*?)\n    \}", sites[True], re.S).group(1)
    assert "try_files $edge_page_file @edge_platform;" in on
    # Misses are remembered: "/-" (a request that can never be a file) costs next to nothing.
    assert "open_file_cache_errors on;" in on
    assert f'add_header Content-Security-Policy "{EXPECTED.csp}" always;' in on
    assert "location @edge_platform {" in sites[True]
    off = re.search(r"location / \{(.*?)\n    \}", sites[False], re.S).group(1)
    assert "proxy_pass http://$edge_platform_hop;" in off
    assert "$edge_page_file" not in sites[False] and "@edge_platform" not in sites[False]


@pytest.mark.parametrize("name, value", [
    ("edge_page_files_csp", "default-src 'self'\"; return 200 \"x"),   # leaves nginx's string
    ("edge_page_files_cache_control", "public, max-age=$arg_x"),     # an nginx variable
    ("edge_page_files_threshold", 0),
])
def test_the_role_refuses_page_files_settings_nginx_would_misread(tmp_path, name, value):
    from test_ansible_tree import _playbook
    from test_role_templates import EDGE_VARS

    plays = [{"name": "Apply the edge role with a bad hot pages setting", "hosts": "all",
              "gather_facts": False, "roles": ["edge"],
              "vars": {**EDGE_VARS, name: value,
                       "edge_cache_metrics_listen_address": "127.0.0.1"}}]
    result, report = _playbook(tmp_path, plays)
    assert result.returncode != 0
    (failure,) = report["failures"]
    assert name in failure["message"]
    assert report["changed"] == []


def test_no_more_pages_are_promoted_than_the_limit(files):
    files.max_pages = 1
    other = pages.Page("podium.test", "en", "br", "/@alice/124", "/@alice/124")
    _promote(files)
    _promote(files, other)
    assert list(files.promoted) == [PAGE]


def test_a_name_the_file_system_refuses_drops_the_page_not_the_service(files, capsys):
    long = "/" + "a" * 300  # a longer name than ext4 or tmpfs allow in one folder entry
    page = pages.Page("podium.test", "en", "br", long, long)
    _cache_file(files.cache_dir, page, NOW + 30)
    _promote(files, page)
    files.refresh(NOW)
    assert page not in files.promoted
    assert "stays with the page cache" in capsys.readouterr().out


def test_counting_a_page_that_cannot_be_promoted_stays_cheap(files):
    """A page past the limit is counted in constant space (a list of every answer within the
    window made each line cost its length: a busy loop at 40,000 answers a second)."""
    files.max_pages = 0
    for i in range(10_000):
        files.saw(PAGE, NOW + i / 1000)
    assert len(files.hits[PAGE]) == files.threshold
    assert PAGE not in files.promoted
