-- 0005: row-level security for actor-scoped access (PROTOCOL.md section 4;
-- the model is explained in docs/security.md).
--
-- current_user_id() is the acting user: the setting torii.user_id, NULL
-- when unset or empty. RLS on users and sessions admits only that user's
-- rows, for reading (USING) and for writing (WITH CHECK). With no user set
-- the policies admit nothing.
--
-- The daemon's login role owns the tables, so it is not subject to RLS (no
-- FORCE ROW LEVEL SECURITY). A request with an actor switches, for its one
-- transaction, to the NOLOGIN role torii_actor, which is subject to RLS.
-- Other services may log in with a role granted torii_actor and get the
-- same isolation.
--
-- torii_actor gets SELECT/INSERT/UPDATE/DELETE on users and sessions and
-- nothing on audit_logs or torii_settings: the audit trigger runs as its
-- owner (SECURITY DEFINER in 0003), NOTIFY needs no privilege.
--
-- Roles belong to the whole cluster, not to one database: torii_actor is
-- created only when missing, and that needs CREATEROLE. Without it the
-- migration stops with the SQL a DBA has to run once.

CREATE FUNCTION current_user_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('torii.user_id', true), '')::uuid $$;

DO $$
DECLARE
    me text := current_user;
    can_create boolean;
    fix text := format('CREATE ROLE torii_actor NOLOGIN; GRANT torii_actor TO %I;', current_user);
BEGIN
    SELECT rolcreaterole OR rolsuper INTO can_create FROM pg_roles WHERE rolname = me;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'torii_actor') THEN
        IF NOT can_create THEN
            RAISE EXCEPTION 'role torii_actor is missing and role % may not create it (no CREATEROLE); '
                            'a database superuser must run once: %', me, fix;
        END IF;
        BEGIN
            CREATE ROLE torii_actor NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by a migration of another database of this cluster
        END;
    END IF;
    IF NOT pg_has_role(me, 'torii_actor', 'MEMBER') THEN
        IF NOT can_create AND NOT pg_has_role(me, 'torii_actor', 'USAGE WITH ADMIN OPTION') THEN
            RAISE EXCEPTION 'role % is not a member of torii_actor and may not grant it (no CREATEROLE); '
                            'a database superuser must run once: %', me, format('GRANT torii_actor TO %I;', me);
        END IF;
        BEGIN
            EXECUTE format('GRANT torii_actor TO %I', me);
        EXCEPTION WHEN unique_violation THEN
            NULL;  -- granted meanwhile by a concurrent migration
        END;
    END IF;
END
$$;

GRANT SELECT, INSERT, UPDATE, DELETE ON users, sessions TO torii_actor;

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;

CREATE POLICY user_isolation ON users
    FOR ALL
    USING (id = current_user_id())
    WITH CHECK (id = current_user_id());

CREATE POLICY session_isolation ON sessions
    FOR ALL
    USING (user_id = current_user_id())
    WITH CHECK (user_id = current_user_id());
