-- A read-only role for Grafana (or any analyst). Run once per database as its owner:
--   psql "$DATABASE_URL" -v password="'choose-one'" -f grafana/reader-role.sql
-- It may read every table of ours, now and later (partitions made by the service included
-- through their parent), and nothing else; statements time out after 30 s.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tetcore_reader') THEN
        CREATE ROLE tetcore_reader LOGIN;
    END IF;
END
$$;
\if :{?password}
ALTER ROLE tetcore_reader PASSWORD :password;
\endif
ALTER ROLE tetcore_reader SET statement_timeout = '30s';
ALTER ROLE tetcore_reader SET default_transaction_read_only = on;
GRANT USAGE ON SCHEMA public TO tetcore_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO tetcore_reader;
GRANT EXECUTE ON FUNCTION tetcore_log_partitions(), tetcore_int(text), tetcore_float(text),
    tetcore_ms(interval), tetcore_time(text), tetcore_jsonb(text) TO tetcore_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO tetcore_reader;
