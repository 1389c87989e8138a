-- hardtrail's PostgreSQL roles. Run once per cluster as a superuser (psql -f roles.sql); it may
-- be run again. Set each role's password afterwards with \password (never in this file), and
-- give agents theirs in a passfile (~/.pgpass or PGPASSFILE) or PGPASSWORD.
--
--   hardtrail_owner   owns the store's tables and runs `hardtrail store migrate`.
--   hardtrail_writer  agents and operators: SELECT and INSERT on every table, no UPDATE,
--                     DELETE or TRUNCATE, so no history can be rewritten or removed through it;
--                     UPDATE and DELETE on the lease table alone (coordination, not evidence).
--   hardtrail_reader  auditors and dashboards: SELECT only (store verify, log, show, diff).
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hardtrail_owner') THEN
		CREATE ROLE hardtrail_owner LOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hardtrail_writer') THEN
		CREATE ROLE hardtrail_writer LOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hardtrail_reader') THEN
		CREATE ROLE hardtrail_reader LOGIN;
	END IF;
END
$$;
