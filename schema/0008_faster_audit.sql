-- 0008: the audit trigger's helpers, made cheap per row. Same behaviour as
-- 0003 (see there), measured with pgbench running create_session's INSERT
-- with every trigger on (8 clients, 2 cores): about 6,000 -> 8,500 tps.
--
-- - torii_audit_on was a SQL function with a SET clause, which PostgreSQL
--   cannot inline: its body was parsed and planned again on every audited
--   row. In PL/pgSQL its plan is cached per connection. It needs no SET:
--   it names its table with its schema, and its only caller, the SECURITY
--   DEFINER torii_audit_row, fixes the search_path anyway.
-- - torii_audit_actor caught invalid_text_representation, and a PL/pgSQL
--   EXCEPTION block opens a subtransaction on every call. It now checks the
--   form first: 32 hex digits, hyphens optional between the groups (every
--   such text casts to uuid). Anything else is recorded as NULL, as before.

CREATE OR REPLACE FUNCTION torii_audit_on(tbl text) RETURNS boolean
    LANGUAGE plpgsql STABLE
    AS $$
BEGIN
    RETURN coalesce((SELECT value FROM public.torii_settings WHERE key = 'audit.enabled'), 'on') = 'on'
       AND (tbl <> 'sessions'
            OR coalesce((SELECT value FROM public.torii_settings WHERE key = 'audit.sessions'), 'on') = 'on');
END
$$;

CREATE OR REPLACE FUNCTION torii_audit_actor() RETURNS uuid
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
    v text := current_setting('torii.user_id', true);
BEGIN
    IF v IS NULL OR v !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' THEN
        RETURN NULL;
    END IF;
    RETURN v::uuid;
END
$$;
