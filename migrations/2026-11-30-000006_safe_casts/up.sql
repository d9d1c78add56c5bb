-- Numbers from messages, for SQL and Grafana: logs->>'height' is whatever the node sent
-- (a number, a 20-digit string, "1.2.3"), and a plain ::bigint or ::float8 cast fails the
-- whole query on one bad value. These return NULL instead, and are plain SQL, so PostgreSQL
-- inlines them. (CASE is nested so that the cheap test guards the cast.)

CREATE FUNCTION tetcore_int(value text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN value ~ '^\s*[-+]?[0-9]{1,19}\s*$' THEN
        CASE WHEN value::numeric BETWEEN -9223372036854775808 AND 9223372036854775807
            THEN value::numeric::bigint END
    END
$$;

COMMENT ON FUNCTION tetcore_int(text) IS
    'The text as a bigint if it is a whole number that fits one, else NULL (never an error): tetcore_int(logs->>''height'').';

CREATE FUNCTION tetcore_float(value text) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN value ~ '^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,4})?\s*$' THEN
        CASE
            WHEN abs(value::numeric) > 1.7976931348623157e308 THEN NULL
            WHEN abs(value::numeric) < 2.2250738585072014e-308 THEN 0
            ELSE value::numeric::double precision
        END
    END
$$;

COMMENT ON FUNCTION tetcore_float(text) IS
    'The text as a double if it is a decimal number within a double''s range (tiny ones are 0), else NULL (never an error): tetcore_float(logs->>''bandwidth_download'').';
