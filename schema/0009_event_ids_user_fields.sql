-- 0009: two things later migrations and the daemon build on.
--
-- 1. An identity for every change event that all daemons agree on. Each
--    daemon numbers what it publishes with its own per-family seq (for gap
--    detection), but a subscriber connected to several daemons receives the
--    same change once from each. Every payload on torii_events now carries
--    "eid": a value of the sequence torii_event_ids, drawn by the trigger
--    that sends it, so every daemon relaying that notification publishes the
--    same eid and a subscriber can drop the copies (docs/protocol.md).
--    Sequences are not transactional: a rolled-back change burns its eid
--    and sends nothing, so eids are unique and increasing per sender but
--    not gap-free; gaps in eid mean nothing (seq is for gaps).
--    Every function that notifies torii_events goes through torii_emit().
--
-- 2. PROTOCOL.md section 5's user fields: users.name (at most 255 bytes) and
--    users.locked_at (the login guard's lock). The user triggers compute
--    `changed` and the audit images from the whole row, so both columns
--    appear there with no change to those triggers.

CREATE SEQUENCE torii_event_ids;
-- The triggers run as whoever changes the row: the daemon's role, a
-- torii_actor transaction, or another service's role. nextval needs USAGE;
-- drawing a number reveals nothing and changes nothing else.
GRANT USAGE ON SEQUENCE torii_event_ids TO PUBLIC;

CREATE FUNCTION torii_emit(payload jsonb) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('torii_events',
                      (payload || jsonb_build_object('eid', nextval('public.torii_event_ids')))::text);
END
$$;

CREATE OR REPLACE FUNCTION torii_notify_user() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    payload jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
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
    PERFORM torii_emit(payload);
    RETURN NULL;
END
$$;

-- As 0006, through torii_emit.
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
    PERFORM torii_emit(payload);
    RETURN NULL;
END
$$;

-- As 0003, through torii_emit.
CREATE OR REPLACE FUNCTION torii_cleanup_summary(deleted bigint, cutoff timestamptz) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM torii_emit(jsonb_build_object('f', 'session', 'k', 'expired', 'count', deleted,
                                          'before', torii_micros(cutoff)));
    IF torii_audit_on('sessions') THEN
        INSERT INTO audit_logs (table_name, record_id, operation, old_data, new_data, actor)
        VALUES ('sessions', torii_cleanup_record_id(), 'DELETE', NULL,
                jsonb_build_object('expired_count', deleted, 'before', torii_micros(cutoff)),
                torii_audit_actor());
    END IF;
END
$$;

-- As 0007, through torii_emit.
CREATE OR REPLACE FUNCTION torii_bulk_import_summary(users bigint, sessions bigint) RETURNS void
    LANGUAGE plpgsql
    SET search_path = public, pg_temp
    AS $$
BEGIN
    IF users IS NULL OR sessions IS NULL OR users < 0 OR sessions < 0 THEN
        RAISE EXCEPTION 'torii_bulk_import_summary: counts must be non-negative numbers'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM torii_emit(jsonb_build_object('f', 'torii', 'k', 'resync',
                                          'reason', format('a bulk import wrote %s user(s) and %s session(s) '
                                                           'without per-row events', users, sessions),
                                          'users', users, 'sessions', sessions));
    IF torii_audit_on('users') THEN
        INSERT INTO audit_logs (table_name, record_id, operation, old_data, new_data, actor)
        VALUES ('users', torii_cleanup_record_id(), 'INSERT', NULL,
                jsonb_build_object('bulk_import', true, 'users', users, 'sessions', sessions),
                torii_audit_actor());
    END IF;
END
$$;

ALTER TABLE users ADD COLUMN name TEXT CONSTRAINT users_name_length CHECK (octet_length(name) <= 255);
ALTER TABLE users ADD COLUMN locked_at TIMESTAMPTZ;
