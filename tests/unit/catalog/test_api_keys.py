"""API key format and hashing (no database)."""

from __future__ import annotations

import pytest

from catalog.api_keys import _split, hash_key

pytestmark = pytest.mark.unit


def test_hash_is_sha256_hex_and_key_dependent():
    import hashlib

    assert hash_key("snl_a_b") == hashlib.sha256(b"snl_a_b").hexdigest()
    assert hash_key("snl_a_b") != hash_key("snl_a_c")


@pytest.mark.parametrize(
    ("key", "prefix"),
    [("snl_abc_def", "abc"), ("snl__x", None), ("xyz_abc_def", None), ("snl_abc", None),
     ("snl_a_b_c", None), ("", None)],
)
def test_prefix_extraction(key, prefix):
    assert _split(key) == prefix
