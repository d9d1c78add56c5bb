-- tetcore_ensure_log_partitions moved rows out of the default partition and then attached the
-- new partition; a COPY routing a row of that range into the default partition in between made
-- the attach fail. The move and the attach now happen under a lock that keeps writers out of
-- the default partition (it is normally empty, and readers are not blocked).

CREATE OR REPLACE FUNCTION tetcore_ensure_log_partitions(first timestamptz, last timestamptz, width_hours integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    width interval := make_interval(hours => width_hours);
    slot timestamptz;
    lo timestamptz;
    hi timestamptz;
    part text;
    created integer := 0;
BEGIN
    IF width_hours NOT IN (1, 2, 3, 4, 6, 8, 12, 24) THEN
        RAISE EXCEPTION 'width_hours must divide a day, got %', width_hours;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('tetcore_logs_expiring partitions'));
    slot := date_trunc('day', first AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    slot := slot + width * floor(extract(epoch FROM first - slot) / extract(epoch FROM width));
    WHILE slot < last LOOP
        FOR lo, hi IN
            SELECT slot, slot + width
            WHERE NOT EXISTS (SELECT 1 FROM tetcore_log_partitions() p WHERE p.lo < slot + width AND p.hi > slot)
            UNION ALL
            SELECT h, h + interval '1 hour'
            FROM generate_series(slot, slot + width - interval '1 hour', interval '1 hour') h
            WHERE EXISTS (SELECT 1 FROM tetcore_log_partitions() p WHERE p.lo < slot + width AND p.hi > slot)
              AND NOT EXISTS (SELECT 1 FROM tetcore_log_partitions() p WHERE p.lo < h + interval '1 hour' AND p.hi > h)
        LOOP
            part := format('tetcore_logs_expiring_p%s', to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD_HH24'));
            -- Writers are kept out of the default partition from the move until the attach
            -- (readers are not): a row routed there in between would make the attach fail.
            LOCK TABLE tetcore_logs_expiring_default IN EXCLUSIVE MODE;
            EXECUTE format('CREATE TABLE %I (LIKE tetcore_logs_expiring INCLUDING DEFAULTS)', part);
            EXECUTE format(
                'WITH moved AS (DELETE FROM tetcore_logs_expiring_default WHERE created_at >= %L AND created_at < %L RETURNING *)
                 INSERT INTO %I SELECT * FROM moved', lo, hi, part);
            EXECUTE format('ALTER TABLE tetcore_logs_expiring ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                part, lo, hi);
            EXECUTE format('COMMENT ON TABLE %I IS %L', part,
                format('Non-audit messages received from %s to %s (UTC).',
                    to_char(lo AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
                    to_char(hi AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')));
            created := created + 1;
        END LOOP;
        slot := slot + width;
    END LOOP;
    RETURN created;
END
$$;
