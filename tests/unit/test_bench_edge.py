"""kit/bench.py's edge bench: the static twins' addresses (decision 0303)."""

from __future__ import annotations

import re

import pytest

from kit import bench

POST = "/@benchpube88fc7/2172058189098280326961920522047966447"
MEDIA = "/m/ab/cd/" + "ab" * 32 + ".bin"


@pytest.mark.parametrize("path", [POST, MEDIA, "/public?since=bench-1a2b3c4d", "/tags/podium"])
def test_a_twins_address_is_as_long_as_the_objects(path):
    assert len("/" + bench.twin_name(1, path)) == len(path)


@pytest.mark.parametrize(("path", "name"), [("/", "2"), ("/a", "2"), ("/ab", "2-"),
                                            ("/abcd", "2-tt")])
def test_a_short_address_gets_the_nearest_file_name(path, name):
    assert bench.twin_name(2, path) == name


def test_twins_of_different_objects_never_share_a_name():
    names = {bench.twin_name(number, POST) for number in range(3)}
    names |= {f"twin-{number}" for number in range(3)}
    assert len(names) == 6


def test_a_twins_name_is_safe_in_a_shell_and_a_url():
    for path in (POST, MEDIA, "/", "/public?since=x&y=1"):
        assert re.fullmatch(r"[0-9a-z-]+", bench.twin_name(0, path))


def test_the_judged_reference_is_the_same_length_one():
    server, same_length = bench.REFERENCES["logged"]
    assert same_length and server == "edge-bench-logged.invalid"
