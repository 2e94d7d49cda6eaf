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
-- SECURITY DEFINER function (this one, and the audit trigger of 0003)
-- current_user is the function's owner, while the role setting and
-- session_user stay those of the caller. Both can be changed only through
-- PostgreSQL's own membership checks, so they cannot be forged.
--
-- SECURITY DEFINER so that current_user here is this function's owner: the
-- role that ran the migrations, which owns users and sessions.
CREATE FUNCTION torii_bulk_import_allowed() RETURNS boolean
    LANGUAGE plpgsql STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    invoker text := current_setting('role');
BEGIN
    IF coalesce(current_setting('torii.bulk_import', true), '') <> 'on' THEN
        RETURN false;
    END IF;
    IF invoker IS NULL OR invoker = 'none' THEN
        invoker := session_user;
    END IF;
    RETURN pg_has_role(invoker, current_user, 'USAGE');
END
$$;

-- The row triggers of 0002 and 0006, unchanged but for the bulk-import
-- early return on INSERT. The setting is tested first, inline, so that
-- ordinary writes pay no function call.

CREATE OR REPLACE FUNCTION torii_notify_user() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    payload jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF current_setting('torii.bulk_import', true) = 'on' THEN
            IF torii_bulk_import_allowed() THEN
                RETURN NULL;  -- summarised by torii_bulk_import_summary()
            END IF;
        END IF;
        payload := jsonb_build_object('f', 'user', 'k', 'created', 'id', NEW.id, 'email', NEW.email);
    ELSIF TG_OP = 'UPDATE' THEN
        payload := jsonb_build_object('f', 'user', 'k', 'updated', 'id', NEW.id, 'email', NEW.email,
                                      'changed', torii_changed_columns(to_jsonb(OLD), to_jsonb(NEW)));
        IF NEW.email IS DISTINCT FROM OLD.email THEN
            payload := payload || jsonb_build_object('old_email', OLD.email);
        END IF;
    ELSE
        payload := jsonb_build_object('f', 'user', 'k', 'deleted', 'id', OLD.id, 'email', OLD.email);
    END IF;
    PERFORM pg_notify('torii_events', payload::text);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION torii_notify_session() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    payload jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF current_setting('torii.bulk_import', true) = 'on' THEN
            IF torii_bulk_import_allowed() THEN
                RETURN NULL;  -- summarised by torii_bulk_import_summary()
            END IF;
        END IF;
        payload := jsonb_build_object('f', 'session', 'k', 'created', 'id', NEW.id, 'user_id', NEW.user_id);
    ELSIF TG_OP = 'UPDATE' THEN
        payload := jsonb_build_object('f', 'session', 'k', 'updated', 'id', NEW.id, 'user_id', NEW.user_id,
                                      'expires_at', torii_micros(NEW.expires_at),
                                      'changed', torii_changed_columns(to_jsonb(OLD), to_jsonb(NEW)));
    ELSE
        IF torii_in_cleanup() AND OLD.expires_at <= now() THEN
            RETURN NULL;  -- summarised by torii_cleanup_summary()
        END IF;
        payload := jsonb_build_object('f', 'session', 'k', 'deleted', 'id', OLD.id, 'user_id', OLD.user_id);
    END IF;
    PERFORM pg_notify('torii_events', payload::text);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION torii_audit_row() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
DECLARE
    old_data jsonb;
    new_data jsonb;
    rec uuid;
BEGIN
    IF TG_OP = 'INSERT' AND current_setting('torii.bulk_import', true) = 'on' THEN
        -- current_user is this function's owner here; the allowed() check
        -- looks at the caller's role instead (see above).
        IF torii_bulk_import_allowed() THEN
            RETURN NULL;  -- summarised by torii_bulk_import_summary()
        END IF;
    END IF;
    IF NOT torii_audit_on(TG_TABLE_NAME) THEN
        RETURN NULL;
    END IF;
    -- Nested: plpgsql resolves OLD.expires_at only when it is reached, and
    -- users rows have no such field.
    IF TG_TABLE_NAME = 'sessions' AND TG_OP = 'DELETE' THEN
        IF torii_in_cleanup() AND OLD.expires_at <= now() THEN
            RETURN NULL;  -- summarised by torii_cleanup_summary()
        END IF;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        old_data := to_jsonb(OLD) - 'password_hash' - 'token_hash' - 'search_vector';
        rec := OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_data := to_jsonb(NEW) - 'password_hash' - 'token_hash' - 'search_vector';
        rec := NEW.id;
    END IF;
    IF TG_TABLE_NAME = 'users' THEN
        IF old_data IS NOT NULL THEN
            old_data := old_data || jsonb_build_object('password_hash_set', OLD.password_hash IS NOT NULL);
        END IF;
        IF new_data IS NOT NULL THEN
            new_data := new_data || jsonb_build_object('password_hash_set', NEW.password_hash IS NOT NULL);
        END IF;
        IF TG_OP = 'UPDATE' THEN
            new_data := new_data || jsonb_build_object('password_hash_changed',
                                                       OLD.password_hash IS DISTINCT FROM NEW.password_hash);
        END IF;
    END IF;
    INSERT INTO audit_logs (table_name, record_id, operation, old_data, new_data, actor)
    VALUES (TG_TABLE_NAME, rec, TG_OP, old_data, new_data, torii_audit_actor());
    RETURN NULL;
END
$$;

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
