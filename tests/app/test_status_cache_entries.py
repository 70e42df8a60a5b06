"""A rendered-status cache entry (podium_app/statuscache.py): what it fills in, and that its
parts are not walked by the garbage collector's full collections (decision 0300)."""

from __future__ import annotations

import gc
import json

from podium_app.statuscache import Template

ENTITY = {"id": "1", "content": "<p>hi \u00e9</p>", "favourited": False, "reblogged": False,
          "reblog": {"id": "2", "content": "<p>inner</p>", "favourited": False,
                     "reblogged": False}}


def test_an_entry_fills_in_each_viewer_flag_in_its_place():
    template = Template(ENTITY)
    filled = json.loads(template.fill((True, False, False, True)))
    assert filled["favourited"] is True and filled["reblogged"] is False
    assert filled["reblog"]["favourited"] is False and filled["reblog"]["reblogged"] is True
    assert filled["content"] == ENTITY["content"]


def test_an_entrys_parts_are_untracked_by_the_collector():
    template = Template(ENTITY)
    gc.collect()
    # Tuples of bytes and ints are untracked once a collection has seen them; lists never.
    assert not gc.is_tracked(template.pieces)
    assert not gc.is_tracked(template.slots)
