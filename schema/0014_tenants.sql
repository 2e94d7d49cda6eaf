-- 0014: tenants (PROTOCOL.md section 6, issue 26). One database serves
-- several tenants; every row of Torii's storage belongs to exactly one.
--
-- * tenants: the registered tenants; 'default' is inserted here and every
--   existing row goes to it, so a deployment that never names a tenant
--   keeps its data and its behaviour.
-- * Every table gets `tenant text NOT NULL` (default: the current tenant,
--   see torii_current_tenant()). users, oauth_states, passkey_challenges,
--   login_failures and the JWT tables reference tenants(name); the
--   user-owned tables (sessions, oauth_accounts, passkeys, secure_tokens)
--   reference users by (tenant, user_id), so a row can never belong to
--   another tenant than its user. audit_logs carries the tenant of the row
--   it records, without a foreign key (it is written by triggers only).
-- * Uniqueness is per tenant: lower(email), (provider, subject), credential
--   ids, token digests, OAuth states, challenge ids, JWT ids; and every
--   lookup is indexed by (tenant, key). UUID ids stay globally unique
--   primary keys: a lookup by id also checks the tenant.
-- * tenant_roles binds a SQL role to one tenant. torii_current_tenant() is
--   the tenant a statement acts in: the tenant bound to the session's login
--   role (session_user) or to the role it switched to (SET ROLE), which no
--   setting can override; else the setting torii.tenant; else 'default'.
--   torii.tenant = '*' means every tenant, honoured only for roles that are
--   not bound (the daemon uses it for cleanup, stats and tenant listing).
-- * Row-level security is FORCEd on every table, so that it binds the
--   tables' owner (the daemon's role) too: a RESTRICTIVE policy admits only
--   rows of the current tenant, for reading and for writing. The actor
--   policies of 0005/0010/0011 stay as they are; a PERMISSIVE policy for the
--   owner (and one for bound roles) keeps them from seeing nothing, and the
--   tables that had no RLS get a permissive policy for everyone, so roles
--   that could read them before still can (in their tenant).
-- * Triggers: every NOTIFY payload carries "tenant" (the row's; "*" for the
--   resyncs that concern every tenant: TRUNCATE and the operator's
--   torii_resync()), and every audit row the tenant of its record.

CREATE TABLE tenants (
    name TEXT PRIMARY KEY CONSTRAINT tenants_name_format CHECK (name ~ '^[a-z0-9_.-]{1,64}$'),
    created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO tenants (name) VALUES ('default');

-- A role listed here acts only in its tenant, whatever it sets. Do not list
-- the daemon's role or torii_actor (docs/security.md).
CREATE TABLE tenant_roles (
    role_name NAME PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants(name)
);

-- SECURITY DEFINER: bound roles need no privilege on tenant_roles. It reads
-- session_user and the role setting, which a SECURITY DEFINER caller (the
-- audit trigger) does not change, and never current_user. Every name is
-- qualified instead of a SET search_path clause (as 0007 does): a caller's
-- search_path cannot redirect anything, and the policies call it on every
-- statement.
CREATE FUNCTION torii_current_tenant() RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER
    AS $$
    SELECT coalesce(
        (SELECT r.tenant FROM public.tenant_roles r WHERE r.role_name OPERATOR(pg_catalog.=) session_user),
        (SELECT r.tenant FROM public.tenant_roles r
          WHERE r.role_name OPERATOR(pg_catalog.=) nullif(pg_catalog.current_setting('role'), 'none')::name),
        nullif(pg_catalog.current_setting('torii.tenant', true), ''),
        'default')
    $$;
GRANT EXECUTE ON FUNCTION torii_current_tenant() TO PUBLIC;

-- Whether the current role is bound in tenant_roles (the permissive
-- policy for bound roles).
CREATE FUNCTION torii_tenant_bound() RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    AS $$
    SELECT EXISTS (SELECT 1 FROM public.tenant_roles r
                    WHERE r.role_name OPERATOR(pg_catalog.=) session_user
                       OR r.role_name OPERATOR(pg_catalog.=) nullif(pg_catalog.current_setting('role'), 'none')::name)
    $$;
GRANT EXECUTE ON FUNCTION torii_tenant_bound() TO PUBLIC;

-- The tenant column, existing rows into 'default' (a constant default adds
-- the column without rewriting the table), then the current tenant as the
-- default for new rows.
ALTER TABLE users ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default' REFERENCES tenants(name);
ALTER TABLE sessions ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE oauth_accounts ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE oauth_states ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default' REFERENCES tenants(name);
ALTER TABLE passkeys ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE passkey_challenges ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default' REFERENCES tenants(name);
ALTER TABLE secure_tokens ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE login_failures ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default' REFERENCES tenants(name);
ALTER TABLE jwt_revocations ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default' REFERENCES tenants(name);
ALTER TABLE jwt_user_cutoffs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default' REFERENCES tenants(name);
ALTER TABLE audit_logs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';

ALTER TABLE users ALTER COLUMN tenant SET DEFAULT torii_current_tenant();
ALTER TABLE sessions ALTER COLUMN tenant SET DEFAULT torii_current_tenant();
ALTER TABLE oauth_accounts ALTER COLUMN tenant SET DEFAULT torii_current_tenant();
ALTER TABLE oauth_states ALTER COLUMN tenant SET DEFAULT torii_current_tenant();
ALTER TABLE passkeys ALTER COLUMN tenant SET DEFAULT torii_current_tenant();
ALTER TABLE passkey_challenges ALTER COLUMN tenant SET DEFAULT torii_current_tenant();
ALTER TABLE secure_tokens ALTER COLUMN tenant SET DEFAULT torii_current_tenant();
ALTER TABLE login_failures ALTER COLUMN tenant SET DEFAULT torii_current_tenant();
ALTER TABLE jwt_revocations ALTER COLUMN tenant SET DEFAULT torii_current_tenant();
ALTER TABLE jwt_user_cutoffs ALTER COLUMN tenant SET DEFAULT torii_current_tenant();
ALTER TABLE audit_logs ALTER COLUMN tenant SET DEFAULT torii_current_tenant();

-- users: email unique per tenant, (tenant, id) for the user-owned tables'
-- foreign keys, list_users' order per tenant.
ALTER TABLE users DROP CONSTRAINT users_email_key;
DROP INDEX users_email_lower_key;
DROP INDEX idx_users_email;
DROP INDEX idx_users_created_at_id;
CREATE UNIQUE INDEX users_tenant_email_lower_key ON users (tenant, lower(email));
ALTER TABLE users ADD CONSTRAINT users_tenant_id_key UNIQUE (tenant, id);
CREATE INDEX idx_users_tenant_created_at_id ON users (tenant, created_at, id);

-- sessions
ALTER TABLE sessions DROP CONSTRAINT sessions_user_id_fkey;
ALTER TABLE sessions DROP CONSTRAINT sessions_token_hash_key;
DROP INDEX idx_sessions_user_id;
ALTER TABLE sessions ADD CONSTRAINT sessions_tenant_token_hash_key UNIQUE (tenant, token_hash);
ALTER TABLE sessions ADD CONSTRAINT sessions_user_fkey FOREIGN KEY (tenant, user_id)
    REFERENCES users (tenant, id) ON DELETE CASCADE;
CREATE INDEX idx_sessions_tenant_user_id ON sessions (tenant, user_id);

-- oauth_accounts
ALTER TABLE oauth_accounts DROP CONSTRAINT oauth_accounts_user_id_fkey;
ALTER TABLE oauth_accounts DROP CONSTRAINT oauth_accounts_provider_subject_key;
DROP INDEX idx_oauth_accounts_user_id;
ALTER TABLE oauth_accounts ADD CONSTRAINT oauth_accounts_tenant_provider_subject_key UNIQUE (tenant, provider, subject);
ALTER TABLE oauth_accounts ADD CONSTRAINT oauth_accounts_user_fkey FOREIGN KEY (tenant, user_id)
    REFERENCES users (tenant, id) ON DELETE CASCADE;
CREATE INDEX idx_oauth_accounts_tenant_user_id ON oauth_accounts (tenant, user_id, created_at);

-- oauth_states, passkey_challenges: keyed per tenant.
ALTER TABLE oauth_states DROP CONSTRAINT oauth_states_pkey;
ALTER TABLE oauth_states ADD PRIMARY KEY (tenant, state);
ALTER TABLE passkey_challenges DROP CONSTRAINT passkey_challenges_pkey;
ALTER TABLE passkey_challenges ADD PRIMARY KEY (tenant, challenge_id);

-- passkeys
ALTER TABLE passkeys DROP CONSTRAINT passkeys_user_id_fkey;
ALTER TABLE passkeys DROP CONSTRAINT passkeys_credential_id_key;
DROP INDEX idx_passkeys_user_id;
ALTER TABLE passkeys ADD CONSTRAINT passkeys_tenant_credential_id_key UNIQUE (tenant, credential_id);
ALTER TABLE passkeys ADD CONSTRAINT passkeys_user_fkey FOREIGN KEY (tenant, user_id)
    REFERENCES users (tenant, id) ON DELETE CASCADE;
CREATE INDEX idx_passkeys_tenant_user_id ON passkeys (tenant, user_id, created_at);

-- secure_tokens
ALTER TABLE secure_tokens DROP CONSTRAINT secure_tokens_user_id_fkey;
ALTER TABLE secure_tokens DROP CONSTRAINT secure_tokens_token_hash_key;
DROP INDEX secure_tokens_user_id;
ALTER TABLE secure_tokens ADD CONSTRAINT secure_tokens_tenant_token_hash_key UNIQUE (tenant, token_hash);
ALTER TABLE secure_tokens ADD CONSTRAINT secure_tokens_user_fkey FOREIGN KEY (tenant, user_id)
    REFERENCES users (tenant, id) ON DELETE CASCADE;
CREATE INDEX secure_tokens_tenant_user_id ON secure_tokens (tenant, user_id);

-- login_failures
DROP INDEX login_failures_email_at;
CREATE INDEX login_failures_tenant_email_at ON login_failures (tenant, email, at);

-- JWT deny-list
ALTER TABLE jwt_revocations DROP CONSTRAINT jwt_revocations_pkey;
ALTER TABLE jwt_revocations ADD PRIMARY KEY (tenant, jti);
ALTER TABLE jwt_user_cutoffs DROP CONSTRAINT jwt_user_cutoffs_pkey;
ALTER TABLE jwt_user_cutoffs ADD PRIMARY KEY (tenant, user_id);

-- audit_logs: list_audit pages newest first within a tenant.
DROP INDEX idx_audit_logs_record_seq;
DROP INDEX idx_audit_logs_table_seq;
CREATE INDEX idx_audit_logs_tenant_seq ON audit_logs (tenant, seq);
CREATE INDEX idx_audit_logs_tenant_record_seq ON audit_logs (tenant, record_id, seq);
CREATE INDEX idx_audit_logs_tenant_table_seq ON audit_logs (tenant, table_name, seq);

-- Row-level security. The tenant is read once per statement (the scalar
-- subquery becomes one init plan; `x = ANY (ARRAY[a, b])` names it once,
-- where `x = a OR x = b` or `x IN (a, b)` would make two), so a policy
-- costs a comparison per row.
DO $$
DECLARE
    t text;
    owner_role text := current_user;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'sessions', 'oauth_accounts', 'oauth_states', 'passkeys',
                             'passkey_challenges', 'secure_tokens', 'login_failures', 'jwt_revocations',
                             'jwt_user_cutoffs', 'audit_logs'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I AS RESTRICTIVE FOR ALL '
                       'USING ((SELECT torii_current_tenant()) = ANY (ARRAY[tenant, ''*''])) '
                       'WITH CHECK ((SELECT torii_current_tenant()) = ANY (ARRAY[tenant, ''*'']))',
                       t);
        -- The owner (the daemon's role) was exempt from RLS; FORCE would
        -- subject it to the actor policies, which admit no row without an
        -- actor. Members of the owner role get it too; torii_actor does not.
        EXECUTE format('CREATE POLICY owner_access ON %I AS PERMISSIVE FOR ALL TO %I USING (true) WITH CHECK (true)',
                       t, owner_role);
    END LOOP;
    -- Tables with actor policies: a bound role sees its tenant's rows (the
    -- privileges granted to it decide what it may do with them).
    FOREACH t IN ARRAY ARRAY['users', 'sessions', 'oauth_accounts', 'passkeys', 'secure_tokens'] LOOP
        EXECUTE format('CREATE POLICY tenant_role_access ON %I AS PERMISSIVE FOR ALL '
                       'USING ((SELECT torii_tenant_bound())) WITH CHECK ((SELECT torii_tenant_bound()))', t);
    END LOOP;
    -- Tables without actor policies: whoever was granted them before keeps
    -- them, within the tenant.
    FOREACH t IN ARRAY ARRAY['oauth_states', 'passkey_challenges', 'login_failures', 'jwt_revocations',
                             'jwt_user_cutoffs', 'audit_logs'] LOOP
        EXECUTE format('CREATE POLICY table_access ON %I AS PERMISSIVE FOR ALL USING (true) WITH CHECK (true)', t);
    END LOOP;
END
$$;

-- Triggers: the payloads of 0009/0010/0011 plus "tenant".
CREATE OR REPLACE FUNCTION torii_notify_user() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    payload jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        payload := jsonb_build_object('f', 'user', 'k', 'created', 'id', NEW.id, 'email', NEW.email,
                                      'tenant', NEW.tenant);
    ELSIF TG_OP = 'UPDATE' THEN
        payload := jsonb_build_object('f', 'user', 'k', 'updated', 'id', NEW.id, 'email', NEW.email,
                                      'changed', torii_changed_columns(to_jsonb(OLD), to_jsonb(NEW)),
                                      'tenant', NEW.tenant);
        IF NEW.email IS DISTINCT FROM OLD.email THEN
            payload := payload || jsonb_build_object('old_email', OLD.email);
        END IF;
    ELSE
        payload := jsonb_build_object('f', 'user', 'k', 'deleted', 'id', OLD.id, 'email', OLD.email,
                                      'tenant', OLD.tenant);
    END IF;
    PERFORM torii_emit(payload);
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
        payload := jsonb_build_object('f', 'session', 'k', 'created', 'id', NEW.id, 'user_id', NEW.user_id,
                                      'tenant', NEW.tenant);
    ELSIF TG_OP = 'UPDATE' THEN
        payload := jsonb_build_object('f', 'session', 'k', 'updated', 'id', NEW.id, 'user_id', NEW.user_id,
                                      'expires_at', torii_micros(NEW.expires_at),
                                      'changed', torii_changed_columns(to_jsonb(OLD), to_jsonb(NEW)),
                                      'tenant', NEW.tenant);
    ELSE
        IF torii_in_cleanup() AND OLD.expires_at <= now() THEN
            RETURN NULL;  -- summarised by torii_cleanup_summary()
        END IF;
        payload := jsonb_build_object('f', 'session', 'k', 'deleted', 'id', OLD.id, 'user_id', OLD.user_id,
                                      'tenant', OLD.tenant);
    END IF;
    PERFORM torii_emit(payload);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION torii_notify_oauth_account() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM torii_emit(jsonb_build_object('f', 'oauth', 'k', 'linked', 'user_id', NEW.user_id,
                                              'provider', NEW.provider, 'tenant', NEW.tenant));
    ELSE
        PERFORM torii_emit(jsonb_build_object('f', 'oauth', 'k', 'unlinked', 'user_id', OLD.user_id,
                                              'provider', OLD.provider, 'tenant', OLD.tenant));
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION torii_notify_passkey() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM torii_emit(jsonb_build_object('f', 'passkey', 'k', 'added', 'user_id', NEW.user_id,
                                              'credential_id', encode(NEW.credential_id, 'hex'),
                                              'tenant', NEW.tenant));
    ELSE
        PERFORM torii_emit(jsonb_build_object('f', 'passkey', 'k', 'deleted', 'user_id', OLD.user_id,
                                              'credential_id', encode(OLD.credential_id, 'hex'),
                                              'tenant', OLD.tenant));
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION torii_notify_jwt() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_TABLE_NAME = 'jwt_revocations' THEN
        PERFORM torii_emit(jsonb_build_object('f', 'jwt', 'k', 'revoked', 'jti', NEW.jti,
                                              'expires_at', torii_micros(NEW.expires_at), 'user_id', NEW.user_id,
                                              'tenant', NEW.tenant));
    ELSE
        PERFORM torii_emit(jsonb_build_object('f', 'jwt', 'k', 'user_revoked', 'user_id', NEW.user_id,
                                              'issued_before', torii_micros(NEW.issued_before),
                                              'tenant', NEW.tenant));
    END IF;
    RETURN NULL;
END
$$;

-- Resyncs that concern every tenant: "tenant": "*".
CREATE OR REPLACE FUNCTION torii_resync(reason text DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql
    SET search_path = public, pg_temp
    AS $$
BEGIN
    IF reason IS NOT NULL AND (char_length(reason) > 200 OR reason ~ '[[:cntrl:]]') THEN
        RAISE EXCEPTION 'torii_resync: the reason must be at most 200 characters with no control characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM torii_emit(jsonb_build_object('f', 'torii', 'k', 'resync', 'source', 'operator',
                                          'reason', COALESCE(NULLIF(reason, ''), 'an operator''s resync'),
                                          'tenant', '*'));
END
$$;

CREATE OR REPLACE FUNCTION torii_notify_truncate() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = public, pg_temp
    AS $$
BEGIN
    PERFORM torii_emit(jsonb_build_object('f', 'torii', 'k', 'resync', 'source', 'truncate',
                                          'table', TG_TABLE_NAME, 'tenant', '*'));
    RETURN NULL;
END
$$;

-- A bulk import writes into the current tenant ("*": every tenant).
CREATE OR REPLACE FUNCTION torii_bulk_import_summary(users bigint, sessions bigint) RETURNS void
    LANGUAGE plpgsql
    SET search_path = public, pg_temp
    AS $$
DECLARE
    t text := torii_current_tenant();
BEGIN
    IF users IS NULL OR sessions IS NULL OR users < 0 OR sessions < 0 THEN
        RAISE EXCEPTION 'torii_bulk_import_summary: counts must be non-negative numbers'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM torii_emit(jsonb_build_object('f', 'torii', 'k', 'resync',
                                          'reason', format('a bulk import wrote %s user(s) and %s session(s) '
                                                           'without per-row events', users, sessions),
                                          'users', users, 'sessions', sessions, 'tenant', t));
    IF torii_audit_on('users') AND t <> '*' THEN
        INSERT INTO audit_logs (table_name, record_id, operation, old_data, new_data, actor, tenant)
        VALUES ('users', torii_cleanup_record_id(), 'INSERT', NULL,
                jsonb_build_object('bulk_import', true, 'users', users, 'sessions', sessions),
                torii_audit_actor(), t);
    END IF;
END
$$;

-- The cleanup's summary, one per tenant whose sessions it deleted.
CREATE FUNCTION torii_cleanup_summary(deleted bigint, cutoff timestamptz, tenant_name text) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM torii_emit(jsonb_build_object('f', 'session', 'k', 'expired', 'count', deleted,
                                          'before', torii_micros(cutoff), 'tenant', tenant_name));
    IF torii_audit_on('sessions') THEN
        INSERT INTO audit_logs (table_name, record_id, operation, old_data, new_data, actor, tenant)
        VALUES ('sessions', torii_cleanup_record_id(), 'DELETE', NULL,
                jsonb_build_object('expired_count', deleted, 'before', torii_micros(cutoff)),
                torii_audit_actor(), tenant_name);
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION torii_cleanup_summary(bigint, timestamptz, text) FROM PUBLIC;

-- The two-argument form (0009) summarises for the current tenant.
CREATE OR REPLACE FUNCTION torii_cleanup_summary(deleted bigint, cutoff timestamptz) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    t text := torii_current_tenant();
BEGIN
    PERFORM torii_cleanup_summary(deleted, cutoff, CASE WHEN t = '*' THEN 'default' ELSE t END);
END
$$;

-- Audit rows carry the tenant of their record in their tenant column (0006's
-- and 0010's functions, plus the tenant); the row images leave it out, so
-- they read as before.
CREATE OR REPLACE FUNCTION torii_audit_row() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
DECLARE
    old_data jsonb;
    new_data jsonb;
    rec uuid;
    ten text;
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
        old_data := to_jsonb(OLD) - 'password_hash' - 'token_hash' - 'search_vector' - 'tenant';
        rec := OLD.id;
        ten := OLD.tenant;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_data := to_jsonb(NEW) - 'password_hash' - 'token_hash' - 'search_vector' - 'tenant';
        rec := NEW.id;
        ten := NEW.tenant;
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
    INSERT INTO audit_logs (table_name, record_id, operation, old_data, new_data, actor, tenant)
    VALUES (TG_TABLE_NAME, rec, TG_OP, old_data, new_data, torii_audit_actor(), ten);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION torii_audit_account_row() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
DECLARE
    old_data jsonb;
    new_data jsonb;
    rec uuid;
    ten text;
BEGIN
    IF NOT torii_audit_on(TG_TABLE_NAME) THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        old_data := to_jsonb(OLD) - 'public_key' - 'tenant';
        rec := OLD.id;
        ten := OLD.tenant;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_data := to_jsonb(NEW) - 'public_key' - 'tenant';
        rec := NEW.id;
        ten := NEW.tenant;
    END IF;
    INSERT INTO audit_logs (table_name, record_id, operation, old_data, new_data, actor, tenant)
    VALUES (TG_TABLE_NAME, rec, TG_OP, old_data, new_data, torii_audit_actor(), ten);
    RETURN NULL;
END
$$;
