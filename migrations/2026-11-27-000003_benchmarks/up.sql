-- Benchmarks: runs of nodes on known hardware, cross-referenced with the telemetry of their
-- time window.

CREATE TABLE host_systems (
    id          bigserial PRIMARY KEY,
    description text      NOT NULL,
    os          text      NOT NULL,
    cpu_qty     integer   NOT NULL CHECK (cpu_qty >= 0),
    cpu_clock   integer   NOT NULL CHECK (cpu_clock >= 0),
    ram_mb      integer   NOT NULL CHECK (ram_mb >= 0),
    disk_info   text      NOT NULL
);

COMMENT ON TABLE host_systems IS 'Machines benchmarks ran on (POST /host_systems).';
COMMENT ON COLUMN host_systems.id IS 'Host system id.';
COMMENT ON COLUMN host_systems.description IS 'Free text describing the machine.';
COMMENT ON COLUMN host_systems.os IS 'Operating system.';
COMMENT ON COLUMN host_systems.cpu_qty IS 'Number of CPUs (cores).';
COMMENT ON COLUMN host_systems.cpu_clock IS 'CPU clock in MHz.';
COMMENT ON COLUMN host_systems.ram_mb IS 'Memory in MiB.';
COMMENT ON COLUMN host_systems.disk_info IS 'Disk description, e.g. NVME.';

CREATE TABLE benchmarks (
    id             bigserial   PRIMARY KEY,
    ts_start       timestamptz NOT NULL,
    ts_end         timestamptz NOT NULL CHECK (ts_end >= ts_start),
    description    text,
    chain_spec     jsonb,
    benchmark_spec jsonb,
    host_system_id bigint      NOT NULL REFERENCES host_systems (id),
    created_at     timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE benchmarks IS 'Benchmark runs (POST /benchmarks); their window selects telemetry to compare.';
COMMENT ON COLUMN benchmarks.id IS 'Benchmark id.';
COMMENT ON COLUMN benchmarks.ts_start IS 'Start of the benchmark window.';
COMMENT ON COLUMN benchmarks.ts_end IS 'End of the benchmark window.';
COMMENT ON COLUMN benchmarks.description IS 'Free text describing the run.';
COMMENT ON COLUMN benchmarks.chain_spec IS 'The chain specification used, as given.';
COMMENT ON COLUMN benchmarks.benchmark_spec IS 'The benchmark parameters, as given.';
COMMENT ON COLUMN benchmarks.host_system_id IS 'The machine (host_systems.id).';
COMMENT ON COLUMN benchmarks.created_at IS 'When the benchmark was recorded (server clock).';

CREATE INDEX benchmarks_host_system_id_idx ON benchmarks (host_system_id);
