-- 0015: the tenant policies' functions in PL/pgSQL, so that a statement
-- under row-level security no longer plans them again.
--
-- 0014's restrictive policy reads torii_current_tenant() once per statement
-- (an InitPlan), and the permissive policy of bound roles reads
-- torii_tenant_bound(). As SQL functions that are SECURITY DEFINER (never
-- inlined), each statement parsed and planned their queries on tenant_roles
-- anew: for the daemon's role, which the policies bind (FORCE), that
-- doubled the cost of a get_session lookup by token (measured with pgbench,
-- one client, prepared: 7,100 statements/s against 13,600 for a superuser,
-- which bypasses the policies). PL/pgSQL keeps each query's plan for the
-- session (11,000–12,000/s in the same run).
--
-- Same answers as 0014's (its comments hold): a role bound in tenant_roles,
-- by session_user first, then by the role it SET ROLE to, then torii.tenant,
-- then 'default'. Every name stays qualified (no SET search_path clause,
-- which would cost a configuration save and restore on every call). CREATE
-- OR REPLACE keeps the owner and the EXECUTE grants of 0014.

CREATE OR REPLACE FUNCTION torii_current_tenant() RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    AS $$
DECLARE
    bound text;
BEGIN
    SELECT r.tenant INTO bound FROM public.tenant_roles r
     WHERE r.role_name OPERATOR(pg_catalog.=) session_user;
    IF bound IS NULL THEN
        SELECT r.tenant INTO bound FROM public.tenant_roles r
         WHERE r.role_name OPERATOR(pg_catalog.=)
               nullif(pg_catalog.current_setting('role'), 'none')::pg_catalog.name;
    END IF;
    RETURN coalesce(bound, nullif(pg_catalog.current_setting('torii.tenant', true), ''), 'default');
END
$$;

CREATE OR REPLACE FUNCTION torii_tenant_bound() RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM public.tenant_roles r
                    WHERE r.role_name OPERATOR(pg_catalog.=) session_user
                       OR r.role_name OPERATOR(pg_catalog.=)
                          nullif(pg_catalog.current_setting('role'), 'none')::pg_catalog.name);
END
$$;
