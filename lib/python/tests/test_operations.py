"""The client's operation table against the protocol's (lib/torii/operations.cpp).

``TORII_OPS_TABLE_BIN`` (set by ctest; tools/test builds it) prints the C++
table as JSON. A row added, dropped or changed on either side fails here.
"""
from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Dict, List

import pytest

import torii_client
from torii_client import IDEMPOTENT_OPS, OPERATIONS, Client


@pytest.fixture(scope="module")
def cxx_table() -> List[Dict[str, Any]]:
    path = os.environ.get("TORII_OPS_TABLE_BIN", "")
    if not path:
        pytest.fail("TORII_OPS_TABLE_BIN is not set: run the suite through tools/test (or ctest), or point it at "
                    "build/<preset>/tests/torii_ops_table", pytrace=False)
    out = subprocess.run([path], check=True, capture_output=True, text=True, timeout=30).stdout
    table = json.loads(out)
    assert len(table) > 40, out  # the exporter printed the table, not nothing
    return table


def test_the_same_operations_in_the_same_order(cxx_table: List[Dict[str, Any]]) -> None:
    assert [row["name"] for row in cxx_table] == list(OPERATIONS)


def test_the_same_properties(cxx_table: List[Dict[str, Any]]) -> None:
    for row in cxx_table:
        op = OPERATIONS[row["name"]]
        assert (op.read_only, op.retry_safe, op.local) == (row["read_only"], row["retry_safe"], row["local"]), row


def test_retries_follow_the_table(cxx_table: List[Dict[str, Any]]) -> None:
    assert IDEMPOTENT_OPS == {row["name"] for row in cxx_table if row["retry_safe"]}
    assert torii_client.IDEMPOTENT_OPS is IDEMPOTENT_OPS


def test_every_operation_has_a_method(cxx_table: List[Dict[str, Any]]) -> None:
    missing = [row["name"] for row in cxx_table if not callable(getattr(Client, row["name"], None))]
    assert missing == []
