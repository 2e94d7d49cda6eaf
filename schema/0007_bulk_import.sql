-- 0007: a bulk-import switch. Copying a whole database in (torii migrate
-- --from sqlite) fires the row triggers of 0002/0003/0006 once per row: a
-- NOTIFY and an audit row each, which for 100,000 users and 500,000 sessions
-- costs most of the run and floods every subscriber with events nobody can
-- use one by one.
--
-- When the transaction-local setting torii.bulk_import is 'on'
-- (set_config('torii.bulk_import', 'on', true)) AND the role running the
-- statement may act as the tables' owner, row INSERTs into users and
-- sessions send no NOTIFY and write no audit row. The importer then calls
-- torii_bulk_import_summary(users, sessions) once before COMMIT: one audit
-- row and one NOTIFY {"f":"torii","k":"resync","reason":...,"users":n,
-- "sessions":m}, which every daemon publishes as torii.resync, so that
-- subscribers drop their caches (rows changed without per-row events).
--
-- Why the owner check: like torii.cleanup (see 0006), torii.bulk_import is
-- an ordinary setting that any session may set, including one running as
-- torii_actor or a service role granted torii_actor. Such a session must
-- not be able to write rows unseen by caches and by the audit log. The
-- owner could drop the triggers anyway, so silencing them for the owner
-- gives nothing away.
--
-- Why INSERT only: an import adds rows. Updates and deletes stay published
-- and audited even with the switch on, so a writer that forgets the
-- summary can at worst leave new rows unannounced, never keep a cache
-- serving a changed or deleted one.

-- True when the switch is on and the role running the statement may act
-- as the tables' owner.
--
-- The "role running the statement" is read from the role setting (SET
-- ROLE, or set_config('role', ..., true) as the daemon does for requests
-- with an actor) and else session_user, not from current_user: inside a
-- SECURITY DEFINER function (this one, or 0003's audit trigger)
-- current_user is the function's owner, while the role setting and
-- session_user stay those of the caller. Both can be changed only through
-- PostgreSQL's own membership checks, so they cannot be forged.
--
-- SECURITY DEFINER so that current_user here is this function's owner: the
-- role that ran the migrations, which owns users and sessions. Every name
-- is qualified with pg_catalog instead of a SET search_path clause: a
-- caller's search_path cannot redirect anything, and the function is
-- called twice for every imported row, where a SET clause would double its
-- cost.
CREATE FUNCTION torii_bulk_import_allowed() RETURNS boolean
    LANGUAGE plpgsql STABLE
    SECURITY DEFINER
    AS $$
DECLARE
    invoker text := pg_catalog.current_setting('role');
BEGIN
    IF COALESCE(pg_catalog.current_setting('torii.bulk_import', true), '') OPERATOR(pg_catalog.<>) 'on' THEN
        RETURN false;
    END IF;
    IF invoker IS NULL OR invoker OPERATOR(pg_catalog.=) 'none' THEN
        invoker := session_user;
    END IF;
    RETURN pg_catalog.pg_has_role(invoker, current_user, 'USAGE');
END
$$;

-- The row triggers of 0002/0003 are split in two: one for UPDATE OR
-- DELETE, unchanged, and one for INSERT with a WHEN condition. The trigger
-- functions themselves (as 0006 left them) do not change.
--
-- Why WHEN and not an early RETURN inside the functions: PostgreSQL
-- evaluates WHEN when the row is written and queues no trigger event when
-- it is false, so a silenced row costs one expression, not a queued event,
-- a re-fetch of the row and a PL/pgSQL call (measured on 50,000 session
-- inserts: 0.6 s with WHEN against 2.6 s with an early RETURN, 2.1 s with
-- the full triggers, 0.45 s with no trigger at all). Functions in a WHEN
-- condition are bound when the trigger is created, so no writer's
-- search_path can substitute another check. The setting is tested first,
-- so ordinary writes never call the function.

DROP TRIGGER users_notify ON users;
DROP TRIGGER users_audit ON users;
DROP TRIGGER sessions_notify ON sessions;
DROP TRIGGER sessions_audit ON sessions;

CREATE TRIGGER users_notify
    AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION torii_notify_user();
CREATE TRIGGER users_notify_insert
    AFTER INSERT ON users
    FOR EACH ROW
    WHEN (current_setting('torii.bulk_import', true) IS DISTINCT FROM 'on' OR NOT torii_bulk_import_allowed())
    EXECUTE FUNCTION torii_notify_user();

CREATE TRIGGER users_audit
    AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION torii_audit_row();
CREATE TRIGGER users_audit_insert
    AFTER INSERT ON users
    FOR EACH ROW
    WHEN (current_setting('torii.bulk_import', true) IS DISTINCT FROM 'on' OR NOT torii_bulk_import_allowed())
    EXECUTE FUNCTION torii_audit_row();

CREATE TRIGGER sessions_notify
    AFTER UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION torii_notify_session();
CREATE TRIGGER sessions_notify_insert
    AFTER INSERT ON sessions
    FOR EACH ROW
    WHEN (current_setting('torii.bulk_import', true) IS DISTINCT FROM 'on' OR NOT torii_bulk_import_allowed())
    EXECUTE FUNCTION torii_notify_session();

CREATE TRIGGER sessions_audit
    AFTER UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION torii_audit_row();
CREATE TRIGGER sessions_audit_insert
    AFTER INSERT ON sessions
    FOR EACH ROW
    WHEN (current_setting('torii.bulk_import', true) IS DISTINCT FROM 'on' OR NOT torii_bulk_import_allowed())
    EXECUTE FUNCTION torii_audit_row();

-- The import's summary, called once in the importing transaction before
-- COMMIT with the numbers of rows it inserted:
-- - one NOTIFY {"f":"torii","k":"resync","reason":"...","users":n,
--   "sessions":m}; the reason is a fixed sentence with the two counts and
--   never row data (daemons publish it as torii.resync);
-- - one audit row when auditing is on: table 'users', operation 'INSERT',
--   record_id the all-zero uuid, new_data {"bulk_import": true,
--   "users": n, "sessions": m}.
-- Both are transactional: a rolled-back import sends and writes nothing.
-- Only the owner may call it (EXECUTE revoked from PUBLIC below).
CREATE FUNCTION torii_bulk_import_summary(users bigint, sessions bigint) RETURNS void
    LANGUAGE plpgsql
    SET search_path = public, pg_temp
    AS $$
BEGIN
    IF users IS NULL OR sessions IS NULL OR users < 0 OR sessions < 0 THEN
        RAISE EXCEPTION 'torii_bulk_import_summary: counts must be non-negative numbers'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_notify('torii_events',
                      jsonb_build_object('f', 'torii', 'k', 'resync',
                                         'reason', format('a bulk import wrote %s user(s) and %s session(s) '
                                                          'without per-row events', users, sessions),
                                         'users', users, 'sessions', sessions)::text);
    IF torii_audit_on('users') THEN
        INSERT INTO audit_logs (table_name, record_id, operation, old_data, new_data, actor)
        VALUES ('users', torii_cleanup_record_id(), 'INSERT', NULL,
                jsonb_build_object('bulk_import', true, 'users', users, 'sessions', sessions),
                torii_audit_actor());
    END IF;
END
$$;

REVOKE EXECUTE ON FUNCTION torii_bulk_import_summary(bigint, bigint) FROM PUBLIC;
