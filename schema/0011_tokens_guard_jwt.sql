-- 0011: PROTOCOL.md section 5's secure tokens, login guard and JWT deny-list.
--
-- secure_tokens: single-use tokens (magic links, password resets, email
--   verification). Only the SHA-256 digest of the token is stored
--   (token_hash); the generic audit trigger strips it. Owned by a user (RLS:
--   an actor sees only its own), deleted with the user. Expired rows deleted
--   by the cleanup (torii.cleanup on, expires_at past) are not audited one by
--   one, as expired sessions are not.
-- login_failures: one row per failed login, per lower-cased email, whether or
--   not a user has that email. No foreign key and no RLS: actor requests to
--   the guard are refused by the daemon, and torii_actor gets no grant.
-- jwt_revocations: the deny-list of single JWTs by jti, kept until the JWT's
--   own exp (expires_at); after that the JWT is invalid anyway and the
--   cleanup deletes the row.
-- jwt_user_cutoffs: "log out everywhere": every JWT of user_id issued before
--   issued_before counts as revoked. A cutoff is needed only while a JWT
--   issued before it can still be valid; the daemon does not know the JWT
--   lifetime, so each cutoff carries expires_at (given by the caller, default
--   issued_before + 30 days, see docs/protocol.md) after which the cleanup
--   deletes it. Neither JWT table has a foreign key to users: a deleted
--   user's JWTs must stay revoked until they expire.
-- Events: jwt.revoked on every insert or change of a revocation, and
--   jwt.user_revoked on every insert or change of a cutoff, through
--   torii_emit(). Deletions send nothing: a service drops an entry itself
--   once it has expired (and an entry deleted early by hand stays denied in
--   a service's memory until then: the safe side).

CREATE TABLE secure_tokens (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL
        CONSTRAINT secure_tokens_purpose CHECK (purpose IN ('magic_link', 'password_reset', 'email_verification')),
    token_hash BYTEA NOT NULL UNIQUE,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX secure_tokens_user_id ON secure_tokens (user_id);
CREATE INDEX secure_tokens_expires_at ON secure_tokens (expires_at);

CREATE TABLE login_failures (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email TEXT NOT NULL CONSTRAINT login_failures_email_lower CHECK (email = lower(email)),
    ip_address TEXT,
    at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_email_at ON login_failures (email, at);
CREATE INDEX login_failures_at ON login_failures (at);

-- jti compares byte-wise (COLLATE "C"), so list_jwt_revocations' cursor
-- order is the primary key's index order.
CREATE TABLE jwt_revocations (
    jti TEXT COLLATE "C" PRIMARY KEY CONSTRAINT jwt_revocations_jti_length CHECK (octet_length(jti) BETWEEN 1 AND 255),
    user_id UUID,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX jwt_revocations_expires_at ON jwt_revocations (expires_at);

CREATE TABLE jwt_user_cutoffs (
    user_id UUID PRIMARY KEY,
    issued_before TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX jwt_user_cutoffs_expires_at ON jwt_user_cutoffs (expires_at);

CREATE FUNCTION torii_notify_jwt() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_TABLE_NAME = 'jwt_revocations' THEN
        PERFORM torii_emit(jsonb_build_object('f', 'jwt', 'k', 'revoked', 'jti', NEW.jti,
                                              'expires_at', torii_micros(NEW.expires_at), 'user_id', NEW.user_id));
    ELSE
        PERFORM torii_emit(jsonb_build_object('f', 'jwt', 'k', 'user_revoked', 'user_id', NEW.user_id,
                                              'issued_before', torii_micros(NEW.issued_before)));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jwt_revocations_notify
    AFTER INSERT OR UPDATE ON jwt_revocations
    FOR EACH ROW EXECUTE FUNCTION torii_notify_jwt();
CREATE TRIGGER jwt_user_cutoffs_notify
    AFTER INSERT OR UPDATE ON jwt_user_cutoffs
    FOR EACH ROW EXECUTE FUNCTION torii_notify_jwt();

-- Audit: torii_audit_row() strips token_hash. The cleanup's quiet delete of
-- expired tokens writes no per-row audit (the WHEN clause: only rows already
-- expired, so setting torii.cleanup cannot hide the deletion of a live one).
CREATE TRIGGER secure_tokens_audit
    AFTER INSERT OR UPDATE ON secure_tokens
    FOR EACH ROW EXECUTE FUNCTION torii_audit_row();
CREATE TRIGGER secure_tokens_audit_delete
    AFTER DELETE ON secure_tokens
    FOR EACH ROW
    WHEN (NOT (torii_in_cleanup() AND OLD.expires_at <= now()))
    EXECUTE FUNCTION torii_audit_row();

GRANT SELECT, INSERT, UPDATE, DELETE ON secure_tokens TO torii_actor;
ALTER TABLE secure_tokens ENABLE ROW LEVEL SECURITY;
CREATE POLICY secure_token_isolation ON secure_tokens
    FOR ALL
    USING (user_id = current_user_id())
    WITH CHECK (user_id = current_user_id());
