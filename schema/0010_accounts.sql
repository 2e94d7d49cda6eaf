-- 0010: the account half of PROTOCOL.md section 5 (issue 19): OAuth accounts
-- and the PKCE verifiers kept under their CSRF state, passkeys and their
-- WebAuthn challenges.
--
-- oauth_accounts and passkeys belong to a user: deleting the user deletes
-- them (ON DELETE CASCADE, whose row deletes fire the triggers below, so a
-- cascade publishes oauth.unlinked / passkey.deleted and is audited). They
-- are published, audited and isolated by row-level security like sessions.
--
-- oauth_states and passkey_challenges hold secrets that clients hand in
-- (the PKCE verifier, the WebAuthn challenge). They have no trigger at all:
-- no event, no audit row. torii_actor gets no privilege on them, and the
-- daemon refuses `actor` requests to their operations. Each is consumed by
-- one DELETE ... RETURNING, so a state or challenge is redeemed at most once.

CREATE TABLE oauth_accounts (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider TEXT NOT NULL
        CONSTRAINT oauth_accounts_provider_format CHECK (provider ~ '^[a-z0-9_.-]{1,64}$'),
    subject TEXT NOT NULL
        CONSTRAINT oauth_accounts_subject_length CHECK (octet_length(subject) BETWEEN 1 AND 255),
    created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    -- A real constraint: Torii's own backend writes ON CONFLICT (provider,
    -- subject) against a table that has none.
    CONSTRAINT oauth_accounts_provider_subject_key UNIQUE (provider, subject)
);
CREATE INDEX idx_oauth_accounts_user_id ON oauth_accounts (user_id, created_at);

CREATE TABLE oauth_states (
    state TEXT PRIMARY KEY CONSTRAINT oauth_states_state_length CHECK (octet_length(state) BETWEEN 1 AND 255),
    verifier TEXT NOT NULL CONSTRAINT oauth_states_verifier_length CHECK (octet_length(verifier) BETWEEN 1 AND 255),
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_oauth_states_expires_at ON oauth_states (expires_at);

CREATE TABLE passkeys (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    credential_id BYTEA NOT NULL
        CONSTRAINT passkeys_credential_id_length CHECK (octet_length(credential_id) BETWEEN 1 AND 1023),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    public_key BYTEA NOT NULL
        CONSTRAINT passkeys_public_key_length CHECK (octet_length(public_key) BETWEEN 1 AND 4096),
    name TEXT CONSTRAINT passkeys_name_length CHECK (octet_length(name) <= 255),
    -- WebAuthn's signature counter is an unsigned 32-bit number.
    sign_count INT8 NOT NULL DEFAULT 0
        CONSTRAINT passkeys_sign_count_range CHECK (sign_count BETWEEN 0 AND 4294967295),
    created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_used_at TIMESTAMPTZ,
    CONSTRAINT passkeys_credential_id_key UNIQUE (credential_id)
);
CREATE INDEX idx_passkeys_user_id ON passkeys (user_id, created_at);

CREATE TABLE passkey_challenges (
    challenge_id TEXT PRIMARY KEY
        CONSTRAINT passkey_challenges_id_length CHECK (octet_length(challenge_id) BETWEEN 1 AND 255),
    challenge BYTEA NOT NULL
        CONSTRAINT passkey_challenges_challenge_length CHECK (octet_length(challenge) BETWEEN 1 AND 1024),
    -- No foreign key: a challenge may name a user that is deleted before it
    -- is taken; the ceremony then fails at the passkey lookup.
    user_id UUID,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_passkey_challenges_expires_at ON passkey_challenges (expires_at);

CREATE TRIGGER oauth_accounts_updated_at
    BEFORE UPDATE ON oauth_accounts
    FOR EACH ROW EXECUTE FUNCTION update_updated_at();

-- Events: oauth.linked / oauth.unlinked {user_id, provider} and
-- passkey.added / passkey.deleted {user_id, credential_id}; the credential
-- id travels as lower-case hex (the daemon publishes it as msgpack bin).
-- Updates (an idempotent relink, a passkey's use) publish nothing.
CREATE FUNCTION torii_notify_oauth_account() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM torii_emit(jsonb_build_object('f', 'oauth', 'k', 'linked', 'user_id', NEW.user_id,
                                              'provider', NEW.provider));
    ELSE
        PERFORM torii_emit(jsonb_build_object('f', 'oauth', 'k', 'unlinked', 'user_id', OLD.user_id,
                                              'provider', OLD.provider));
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION torii_notify_passkey() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM torii_emit(jsonb_build_object('f', 'passkey', 'k', 'added', 'user_id', NEW.user_id,
                                              'credential_id', encode(NEW.credential_id, 'hex')));
    ELSE
        PERFORM torii_emit(jsonb_build_object('f', 'passkey', 'k', 'deleted', 'user_id', OLD.user_id,
                                              'credential_id', encode(OLD.credential_id, 'hex')));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER oauth_accounts_notify
    AFTER INSERT OR DELETE ON oauth_accounts
    FOR EACH ROW EXECUTE FUNCTION torii_notify_oauth_account();
CREATE TRIGGER passkeys_notify
    AFTER INSERT OR DELETE ON passkeys
    FOR EACH ROW EXECUTE FUNCTION torii_notify_passkey();

-- Audit, as torii_audit_row() does for users and sessions (SECURITY
-- DEFINER for the same reason), with the passkey's public key left out: it
-- is not a secret, but an audit trail has no use for it. credential_id is
-- an identifier and stays (as JSON's "\x..." bytea text).
CREATE FUNCTION torii_audit_account_row() RETURNS trigger
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
    IF TG_OP <> 'INSERT' THEN
        old_data := to_jsonb(OLD) - 'public_key';
        rec := OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_data := to_jsonb(NEW) - 'public_key';
        rec := NEW.id;
    END IF;
    INSERT INTO audit_logs (table_name, record_id, operation, old_data, new_data, actor)
    VALUES (TG_TABLE_NAME, rec, TG_OP, old_data, new_data, torii_audit_actor());
    RETURN NULL;
END
$$;

CREATE TRIGGER oauth_accounts_audit
    AFTER INSERT OR UPDATE OR DELETE ON oauth_accounts
    FOR EACH ROW EXECUTE FUNCTION torii_audit_account_row();
CREATE TRIGGER passkeys_audit
    AFTER INSERT OR UPDATE OR DELETE ON passkeys
    FOR EACH ROW EXECUTE FUNCTION torii_audit_account_row();

-- Row-level security as on sessions (0005).
GRANT SELECT, INSERT, UPDATE, DELETE ON oauth_accounts, passkeys TO torii_actor;

ALTER TABLE oauth_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE passkeys ENABLE ROW LEVEL SECURITY;

CREATE POLICY oauth_account_isolation ON oauth_accounts
    FOR ALL
    USING (user_id = current_user_id())
    WITH CHECK (user_id = current_user_id());

CREATE POLICY passkey_isolation ON passkeys
    FOR ALL
    USING (user_id = current_user_id())
    WITH CHECK (user_id = current_user_id());
