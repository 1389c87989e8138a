-- The privileges of hardtrail's roles (roles.sql) in one store database. Run as a superuser
-- connected to the store's database, after
--
--   CREATE DATABASE hardtrail OWNER hardtrail_owner;
--
-- The owner creates every table (hardtrail store migrate); default privileges give the writer
-- and reader their rights on each table when it is created, so tables a later schema step adds
-- are covered without running this again. Nothing grants UPDATE, DELETE or TRUNCATE on
-- history: held spans, results, links and status events are append-only records, and a capture
-- that finds a snapshot unchanged appends a held record instead of updating one.
--
-- The one exception is the lease table, `leases`: coordination state, not evidence (which agent
-- captures which target, renewed every few seconds; store verify does not read it). The writer
-- may UPDATE and DELETE its rows, and no other table's. The schema step that creates it grants
-- this to every role that may insert into it; the block at the end does the same for a store
-- migrated before this was run.
DO $$
BEGIN
	EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
	EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO hardtrail_writer, hardtrail_reader', current_database());
END
$$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO hardtrail_writer, hardtrail_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE hardtrail_owner IN SCHEMA public GRANT SELECT, INSERT ON TABLES TO hardtrail_writer;
ALTER DEFAULT PRIVILEGES FOR ROLE hardtrail_owner IN SCHEMA public GRANT SELECT ON TABLES TO hardtrail_reader;
-- Tables that already exist (a store migrated before this was run).
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO hardtrail_writer;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO hardtrail_reader;
-- The schema version is the owner's alone (hardtrail store migrate): the writer and reader may
-- read it, never change it. Migrating revokes what the default privileges above gave on the
-- table when it was created; this revokes what the grants above gave on a store migrated already.
DO $$
BEGIN
	IF to_regclass('hardtrail_schema') IS NOT NULL THEN
		REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON hardtrail_schema FROM hardtrail_writer, hardtrail_reader;
	END IF;
END
$$;
-- The leases are the writer's one mutable table: coordination state, not evidence.
DO $$
BEGIN
	IF to_regclass('leases') IS NOT NULL THEN
		GRANT UPDATE, DELETE ON leases TO hardtrail_writer;
	END IF;
END
$$;
