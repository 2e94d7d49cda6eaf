-- 0003: the audit log. The RFC's audit_logs table plus `actor` (the user a
-- request acted for, from the setting torii.user_id) and `seq` (the order
-- in which rows were written: list_audit pages newest first on it, so a
-- cursor stays valid while new rows arrive). Row triggers on users and
-- sessions write it in the same transaction as the change, so plain-SQL
-- changes are audited too and a rolled-back change leaves no row.
--
-- Secrets never reach this table: users rows are copied without
-- password_hash (the snapshot says "password_hash_set": true/false, and an
-- UPDATE's new_data says "password_hash_changed": true/false), sessions rows
-- without token_hash. The generated search_vector is left out as well.
--
-- Switches, read by the triggers on every row: torii_settings keys
-- 'audit.enabled' and 'audit.sessions' ('on'/'off', missing means on). The
-- daemon copies its config keys audit.enabled / audit.sessions there with
-- torii_configure_audit() on start and on reload. Being rows, they apply to
-- every daemon and every plain-SQL writer of the database at once.
--
-- The trigger function is SECURITY DEFINER (owned by the migrating role,
-- which owns the tables): a session running as torii_actor (see 0005) can
-- then be audited without being allowed to read, forge or delete audit rows.

CREATE TABLE torii_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

INSERT INTO torii_settings (key, value) VALUES ('audit.enabled', 'on'), ('audit.sessions', 'on');

CREATE TABLE audit_logs (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    table_name TEXT NOT NULL,
    record_id UUID NOT NULL,
    operation TEXT NOT NULL,
    old_data JSONB,
    new_data JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    actor UUID,
    seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
);

-- list_audit: newest first overall (the unique index on seq), per record,
-- per table; retention prunes by created_at.
CREATE INDEX idx_audit_logs_record_seq ON audit_logs (record_id, seq);
CREATE INDEX idx_audit_logs_table_seq ON audit_logs (table_name, seq);
CREATE INDEX idx_audit_logs_created_at ON audit_logs (created_at);

-- The record_id of cleanup summary rows: no single session is meant.
CREATE FUNCTION torii_cleanup_record_id() RETURNS uuid
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT '00000000-0000-0000-0000-000000000000'::uuid $$;

-- Whether rows of `tbl` ('users' or 'sessions') are audited now.
CREATE FUNCTION torii_audit_on(tbl text) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = public, pg_temp
    AS $$
    SELECT coalesce((SELECT value FROM torii_settings WHERE key = 'audit.enabled'), 'on') = 'on'
       AND (tbl <> 'sessions'
            OR coalesce((SELECT value FROM torii_settings WHERE key = 'audit.sessions'), 'on') = 'on')
    $$;

-- The acting user: torii.user_id when set to a uuid, else NULL. A value
-- that is not a uuid is recorded as NULL rather than failing the write.
CREATE FUNCTION torii_audit_actor() RETURNS uuid
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
    v text := nullif(current_setting('torii.user_id', true), '');
BEGIN
    IF v IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN v::uuid;
EXCEPTION WHEN invalid_text_representation THEN
    RETURN NULL;
END
$$;

CREATE FUNCTION torii_audit_row() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
DECLARE
    old_data jsonb;
    new_data jsonb;
    rec uuid;
BEGIN
    IF NOT torii_audit_on(TG_TABLE_NAME) THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'sessions' AND TG_OP = 'DELETE' AND torii_in_cleanup() THEN
        RETURN NULL;  -- summarised by torii_cleanup_summary()
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

CREATE TRIGGER users_audit
    AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION torii_audit_row();

CREATE TRIGGER sessions_audit
    AFTER INSERT OR UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION torii_audit_row();

-- The cleanup's per-pass summary: the session.expired notification, and
-- one audit row (table 'sessions', operation 'DELETE', record_id the
-- all-zero uuid, new_data {"expired_count": n, "before": micros}) when
-- session auditing is on. Called by the daemon's own role.
CREATE OR REPLACE FUNCTION torii_cleanup_summary(deleted bigint, cutoff timestamptz) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('torii_events',
                      jsonb_build_object('f', 'session', 'k', 'expired', 'count', deleted,
                                         'before', torii_micros(cutoff))::text);
    IF torii_audit_on('sessions') THEN
        INSERT INTO audit_logs (table_name, record_id, operation, old_data, new_data, actor)
        VALUES ('sessions', torii_cleanup_record_id(), 'DELETE', NULL,
                jsonb_build_object('expired_count', deleted, 'before', torii_micros(cutoff)),
                torii_audit_actor());
    END IF;
END
$$;

-- Sets the audit switches (daemon config audit.enabled, audit.sessions).
CREATE FUNCTION torii_configure_audit(enabled boolean, sessions boolean) RETURNS void
    LANGUAGE sql
    AS $$
    INSERT INTO torii_settings (key, value)
    VALUES ('audit.enabled', CASE WHEN enabled THEN 'on' ELSE 'off' END),
           ('audit.sessions', CASE WHEN sessions THEN 'on' ELSE 'off' END)
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
    WHERE torii_settings.value IS DISTINCT FROM EXCLUDED.value
    $$;

-- Retention: deletes at most `batch_size` audit rows older than
-- `retention_days` days and returns how many it deleted. The janitor calls
-- it, each call its own short transaction, until it returns less than
-- batch_size. retention_days <= 0 deletes nothing (keep forever).
CREATE FUNCTION torii_prune_audit(retention_days integer, batch_size integer) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
DECLARE
    n bigint;
BEGIN
    IF retention_days IS NULL OR retention_days <= 0 OR batch_size IS NULL OR batch_size <= 0 THEN
        RETURN 0;
    END IF;
    DELETE FROM audit_logs
    WHERE id IN (SELECT id FROM audit_logs
                 WHERE created_at < now() - make_interval(days => retention_days)
                 ORDER BY created_at
                 LIMIT batch_size
                 FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

REVOKE EXECUTE ON FUNCTION torii_configure_audit(boolean, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION torii_prune_audit(integer, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION torii_cleanup_summary(bigint, timestamptz) FROM PUBLIC;
