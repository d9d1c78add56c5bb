DROP TABLE benchmarks;
DROP TABLE host_systems;
