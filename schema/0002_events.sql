-- 0002: change events. Row triggers on users and sessions NOTIFY the
-- channel 'torii_events' with a compact JSON payload that the daemon's
-- LISTEN connection turns into PROTOCOL.md section 3 events. Because the
-- triggers live in the database, changes made by plain SQL, by other
-- daemons and by cascades (deleting a user deletes its sessions, and each
-- session row fires its own trigger) are all published. NOTIFY is
-- transactional: nothing is delivered for a rolled-back change.
--
-- Payload contract (keys absent when not listed for that case):
--   "f"          "user" | "session"
--   "k"          "created" | "updated" | "deleted" ("expired": see below)
--   "id"         uuid text
--   "email"      users: the row's email (the new one on update)
--   "old_email"  users, update only, only when the email changed
--   "changed"    update only: names of the columns whose value differs,
--                sorted; never their values. Generated columns (the search
--                vector of 0004) are left out.
--   "user_id"    sessions: uuid text
--   "expires_at" sessions, update only: int8 microseconds since the epoch
-- Never metadata values, password hashes or token digests.
--
-- Size: PostgreSQL refuses payloads of 8000 bytes or more. The largest
-- payload is a user update carrying two emails (each at most 254 bytes by
-- the CHECK below, at most ~1.5 KB once JSON-escaped) plus the column names
-- of users, so it stays far below the limit by construction.
--
-- Expired-session cleanup: when the transaction-local setting torii.cleanup
-- is 'on' (set_config('torii.cleanup', 'on', true)), session DELETE
-- triggers stay silent; the cleanup calls torii_cleanup_summary() once per
-- pass instead, which sends {"f":"session","k":"expired","count":n,
-- "before":micros}. (0003 adds the audit summary row to it.)

ALTER TABLE users ADD CONSTRAINT users_email_length CHECK (octet_length(email) <= 254);

-- int8 microseconds since the epoch, the unit of every timestamp the daemon
-- exchanges with PostgreSQL.
CREATE FUNCTION torii_micros(ts timestamptz) RETURNS int8
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT (extract(epoch FROM ts) * 1000000)::int8 $$;

-- Sorted names of the keys whose values differ between two row images.
CREATE FUNCTION torii_changed_columns(old_row jsonb, new_row jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT coalesce(jsonb_agg(n.key ORDER BY n.key), '[]'::jsonb)
    FROM jsonb_each(new_row) AS n
    WHERE n.key <> 'search_vector' AND n.value IS DISTINCT FROM (old_row -> n.key)
    $$;

-- True while the expired-session cleanup runs in this transaction.
CREATE FUNCTION torii_in_cleanup() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('torii.cleanup', true), '') = 'on' $$;

CREATE FUNCTION torii_notify_user() RETURNS trigger
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
    PERFORM pg_notify('torii_events', payload::text);
    RETURN NULL;
END
$$;

CREATE FUNCTION torii_notify_session() RETURNS trigger
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
        IF torii_in_cleanup() THEN
            RETURN NULL;  -- summarised by torii_cleanup_summary()
        END IF;
        payload := jsonb_build_object('f', 'session', 'k', 'deleted', 'id', OLD.id, 'user_id', OLD.user_id);
    END IF;
    PERFORM pg_notify('torii_events', payload::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER users_notify
    AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION torii_notify_user();

CREATE TRIGGER sessions_notify
    AFTER INSERT OR UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION torii_notify_session();

-- Called once per cleanup pass that deleted rows, in the pass's last
-- transaction: `deleted` rows whose expires_at was before `cutoff`.
-- Redefined by 0003 to write the audit summary row as well.
CREATE FUNCTION torii_cleanup_summary(deleted bigint, cutoff timestamptz) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('torii_events',
                      jsonb_build_object('f', 'session', 'k', 'expired', 'count', deleted,
                                         'before', torii_micros(cutoff))::text);
END
$$;
