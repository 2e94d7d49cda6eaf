#!/bin/sh
# Scores a unit file with `systemd-analyze security --offline=yes` and fails
# when the overall exposure is above the limit (default 2.0). systemd 252
# and later score a unit file offline; earlier versions cannot, and this
# check then fails rather than passing unchecked.
# Usage: security-score.sh SYSTEMD_ANALYZE UNIT_FILE [LIMIT]
set -eu
analyze=$1
unit=$2
limit=${3:-2.0}

out=$("$analyze" security --offline=yes "$unit" 2>&1) || {
  # A nonzero status alone is not a verdict (--threshold is not given);
  # it means the offline mode itself failed.
  echo "$out"
  echo "systemd-analyze security --offline=yes failed on $unit" >&2
  exit 1
}
echo "$out" | grep -E '^✗' || true
score=$(echo "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
  echo "$out"
  echo "no overall exposure level in the output" >&2
  exit 1
fi
echo "exposure level of $(basename "$unit"): $score (limit $limit)"
awk -v s="$score" -v l="$limit" 'BEGIN { exit !(s + 0 <= l + 0) }' || {
  echo "$(basename "$unit") scores $score, above $limit" >&2
  exit 1
}
