// Spelling shared by the statements of every family (ops_<family>.cpp):
// timestamps leave as int8 microseconds since the epoch and arrive the same
// way, so no text timestamp is ever parsed. Macros, because the statements
// are string literals joined at compile time. No code; any thread.
#pragma once

// A timestamptz column as int8 microseconds.
#define US(col) "(extract(epoch from " col ") * 1000000)::int8"
// An int8 microseconds parameter as a timestamptz.
#define TS(param) "(timestamptz 'epoch' + " param "::int8 * interval '1 microsecond')"
