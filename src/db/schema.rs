// @generated automatically by Diesel CLI.

diesel::table! {
    /// One row per node session: a telemetry id on one WebSocket connection. A process that runs several nodes (a collator) has one row per id; a node that reconnects gets a new row.
    peer_connections (id) {
        /// Session id; tetcore_logs.peer_connection_id refers to it.
        id -> Int8,
        /// IP address of the client that opened the WebSocket, without port.
        ip_addr -> Text,
        /// True when the node connected to /audit: its logs are kept for ever instead of LOG_EXPIRY_H hours.
        audit -> Bool,
        /// The envelope "id" the node used for this session (u64); 0 for the flat 2020 (slog) format, which has none.
        telemetry_id -> Numeric,
        /// When the server saw the first message of this session (server clock).
        created_at -> Timestamptz,
        /// When the WebSocket closed (server clock); NULL while the session is live. If its instance died, the instance's last heartbeat.
        ended_at -> Nullable<Timestamptz>,
        /// When the latest system.connected message of this session arrived (server clock); NULL if none did.
        connected_at -> Nullable<Timestamptz>,
        /// libp2p peer id of the node (network_id of system.connected, 12D3KooW...); NULL until system.connected arrives.
        peer_id -> Nullable<Text>,
        /// Node name (--name), from system.connected.
        name -> Nullable<Text>,
        /// Chain name, from system.connected.
        chain -> Nullable<Text>,
        /// Client version string, from system.connected.
        version -> Nullable<Text>,
        /// Whether the node runs as an authority (validator), from system.connected.
        authority -> Nullable<Bool>,
        /// Node start time in milliseconds since the Unix epoch (node clock), from system.connected.
        startup_time -> Nullable<Int8>,
        /// Client implementation name, e.g. "Substrate Node", from system.connected.
        implementation -> Nullable<Text>,
        /// Genesis block hash, 0x-prefixed hex, from system.connected.
        genesis_hash -> Nullable<Text>,
        /// Operating system the node was built for (modern clients only).
        target_os -> Nullable<Text>,
        /// CPU architecture the node was built for (modern clients only).
        target_arch -> Nullable<Text>,
        /// Target environment (gnu, musl, ...) the node was built for (modern clients only).
        target_env -> Nullable<Text>,
        /// Hardware description from system.connected (cpu, memory, core_count, linux_kernel, linux_distro, is_virtual_machine; modern clients only).
        sysinfo -> Nullable<Jsonb>,
        /// The instance (tetcore_instances.id) whose socket carried this session; NULL for sessions stored before instances were recorded.
        instance_id -> Nullable<Int8>,
    }
}

diesel::table! {
    /// One row per telemetry message. Partitioned by audit, and the non-audit rows by day of created_at (tetcore_logs_expiring_pYYYYMMDD), so expired days are dropped whole.
    tetcore_logs (id) {
        /// Row id, unique (from tetcore_logs_id_seq); not a time order across instances, use created_at.
        id -> Int8,
        /// The session (peer_connections.id) that sent the message.
        peer_connection_id -> Int8,
        /// When the server received the message (server clock; node clocks are unreliable, the node's own time is logs->>'ts').
        created_at -> Timestamptz,
        /// Copy of peer_connections.audit: audit rows are kept for ever, the others for LOG_EXPIRY_H hours.
        audit -> Bool,
        /// The message, normalised so logs->>'msg' works for every era: the flat 2020 object as sent, or the payload of an enveloped message with the envelope's "ts" and "id" added. NUL characters, which jsonb refuses, are replaced by U+FFFD and "_sanitized": true is added.
        logs -> Jsonb,
    }
}

diesel::table! {
    /// Benchmark runs (POST /benchmarks); their window selects telemetry to compare.
    benchmarks (id) {
        /// Benchmark id.
        id -> Int8,
        /// Start of the benchmark window.
        ts_start -> Timestamptz,
        /// End of the benchmark window.
        ts_end -> Timestamptz,
        /// Free text describing the run.
        description -> Nullable<Text>,
        /// The chain specification used, as given.
        chain_spec -> Nullable<Jsonb>,
        /// The benchmark parameters, as given.
        benchmark_spec -> Nullable<Jsonb>,
        /// The machine (host_systems.id).
        host_system_id -> Int8,
        /// When the benchmark was recorded (server clock).
        created_at -> Timestamptz,
    }
}

diesel::table! {
    /// Machines benchmarks ran on (POST /host_systems).
    host_systems (id) {
        /// Host system id.
        id -> Int8,
        /// Free text describing the machine.
        description -> Text,
        /// Operating system.
        os -> Text,
        /// Number of CPUs (cores).
        cpu_qty -> Int4,
        /// CPU clock in MHz.
        cpu_clock -> Int4,
        /// Memory in MiB.
        ram_mb -> Int4,
        /// Disk description, e.g. NVME.
        disk_info -> Text,
    }
}

diesel::joinable!(benchmarks -> host_systems (host_system_id));

diesel::allow_tables_to_appear_in_same_query!(
    benchmarks,
    host_systems,
    peer_connections,
    tetcore_logs,
);
