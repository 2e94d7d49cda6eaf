-- 0006: the quiet delete of the expired-session cleanup covers expired rows
-- only. torii.cleanup is an ordinary setting that any session may set,
-- including one running as torii_actor; with 0002/0003 alone such a session
-- could delete live sessions with no session.deleted event (so caches would
-- keep serving them) and no audit row. Now a session DELETE is silent only
-- when torii.cleanup is 'on' *and* the row had already expired: a cache
-- never serves a session past its expires_at, and the cleanup's summary
-- (torii_cleanup_summary) accounts for expired rows. Everything else is
-- published and audited as usual.

CREATE OR REPLACE FUNCTION torii_notify_session() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    payload jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
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
