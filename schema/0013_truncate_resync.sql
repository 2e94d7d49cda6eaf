-- 0013: changes that fire no row trigger still reach every cache.
--
-- TRUNCATE fires no row trigger, so before this migration a truncated
-- sessions table sent no event and every cache (the daemons' hot sessions,
-- every service's SessionCache) kept serving the truncated sessions until
-- they expired. Now a statement-level AFTER TRUNCATE trigger on every table
-- whose changes are published (users, sessions, oauth_accounts, passkeys,
-- jwt_revocations, jwt_user_cutoffs) sends one database-wide resync through
-- torii_emit(): {"f":"torii","k":"resync","source":"truncate","table":t}
-- plus its eid. Every daemon relays it as torii.resync with that eid, drops
-- its own hot sessions, and every subscriber reports it once as stale (no
-- other endpoint can vouch for it: every endpoint relays it).
--
-- One per truncated table: TRUNCATE users CASCADE truncates several tables
-- and fires each one's trigger, so caches drop everything a few times in a
-- row, which costs nothing more. (Sending one per transaction would need a
-- marker that the truncating session could set beforehand, and a role with
-- the TRUNCATE privilege alone must not be able to silence the event.)
--
-- torii_resync(reason): the operator's resync, for changes made with the
-- triggers bypassed (session_replication_role = replica, ALTER TABLE ...
-- DISABLE TRIGGER, a restored dump, logical replication into the
-- database): the same event with "source":"operator" and the reason (at
-- most 200 characters, no control characters; daemons publish it after
-- their own check, since any session can send a raw NOTIFY). `torii resync`
-- calls it (docs/operations.md). Anyone may call it, as anyone may NOTIFY:
-- a resync costs caches a reload and reveals nothing.

CREATE FUNCTION torii_resync(reason text DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql
    SET search_path = public, pg_temp
    AS $$
BEGIN
    IF reason IS NOT NULL AND (char_length(reason) > 200 OR reason ~ '[[:cntrl:]]') THEN
        RAISE EXCEPTION 'torii_resync: the reason must be at most 200 characters with no control characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM torii_emit(jsonb_build_object('f', 'torii', 'k', 'resync', 'source', 'operator',
                                          'reason', COALESCE(NULLIF(reason, ''), 'an operator''s resync')));
END
$$;

CREATE FUNCTION torii_notify_truncate() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = public, pg_temp
    AS $$
BEGIN
    PERFORM torii_emit(jsonb_build_object('f', 'torii', 'k', 'resync', 'source', 'truncate',
                                          'table', TG_TABLE_NAME));
    RETURN NULL;
END
$$;

CREATE TRIGGER users_notify_truncate
    AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION torii_notify_truncate();
CREATE TRIGGER sessions_notify_truncate
    AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION torii_notify_truncate();
CREATE TRIGGER oauth_accounts_notify_truncate
    AFTER TRUNCATE ON oauth_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION torii_notify_truncate();
CREATE TRIGGER passkeys_notify_truncate
    AFTER TRUNCATE ON passkeys
    FOR EACH STATEMENT EXECUTE FUNCTION torii_notify_truncate();
CREATE TRIGGER jwt_revocations_notify_truncate
    AFTER TRUNCATE ON jwt_revocations
    FOR EACH STATEMENT EXECUTE FUNCTION torii_notify_truncate();
CREATE TRIGGER jwt_user_cutoffs_notify_truncate
    AFTER TRUNCATE ON jwt_user_cutoffs
    FOR EACH STATEMENT EXECUTE FUNCTION torii_notify_truncate();
