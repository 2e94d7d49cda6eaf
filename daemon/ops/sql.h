// Spelling shared by the statements of every family (ops_<family>.cpp):
// timestamps leave as int8 microseconds since the epoch and arrive the same
// way, so no text timestamp is ever parsed. Macros, because the statements
// are string literals joined at compile time. No code; any thread.
#pragma once

// A timestamptz column as int8 microseconds.
#define US(col) "(extract(epoch from " col ") * 1000000)::int8"
// An int8 microseconds parameter as a timestamptz.
#define TS(param) "(timestamptz 'epoch' + " param "::int8 * interval '1 microsecond')"
// The Torii id (users.metadata->>'torii_id') of the user a row of `table`
// belongs to (its user_id), nil when absent: the user_torii_id of OAuth
// accounts, passkeys and secure tokens (docs/protocol.md). One index probe
// on users' primary key in the same statement; under an actor, row-level
// security shows only the actor's own users row.
#define USER_TORII_ID(table) \
  "(SELECT tu.metadata->>'torii_id' FROM users tu WHERE tu.id = " table ".user_id) AS user_torii_id"
