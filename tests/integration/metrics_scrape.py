#!/usr/bin/python3
"""Fetches a Prometheus /metrics page and parses it with Debian's
python3-prometheus-client (prometheus_client.parser), as a scraper would.

    metrics_scrape.py URL

Prints one line per sample, "TYPE NAME{k=v,...} VALUE" with the labels
sorted, for tests/integration/metrics_test.cpp to assert on. Exits 1 when
the page cannot be fetched or parsed (the parser raises on malformed text).
"""
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    url = sys.argv[1]
    with urllib.request.urlopen(url, timeout=10) as resp:
        if resp.status != 200:
            print(f"HTTP {resp.status}", file=sys.stderr)
            return 1
        ctype = resp.headers.get("Content-Type", "")
        text = resp.read().decode("utf-8")
    print(f"content-type {ctype}")
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            print(f"{family.type} {s.name}{{{labels}}} {s.value!r}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - any failure is the test's failure
        print(f"scrape failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
