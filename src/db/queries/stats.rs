//! The size of every table and index of ours.

use diesel::pg::PgConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::{sql_query, QueryResult, QueryableByName, RunQueryDsl};

#[derive(QueryableByName, Debug)]
pub struct RelationSize {
    #[diesel(sql_type = Text)]
    pub relation: String,
    #[diesel(sql_type = Text)]
    pub size: String,
    #[diesel(sql_type = BigInt)]
    pub bytes: i64,
    #[diesel(sql_type = BigInt)]
    pub rows_estimate: i64,
}

/// Tables (with their TOAST) and indexes of the public schema, partitions included, biggest
/// first. A partitioned parent has no storage of its own: its partitions are listed.
pub fn relation_sizes(conn: &mut PgConnection) -> QueryResult<Vec<RelationSize>> {
    sql_query(
        "SELECT c.relname::text AS relation, pg_size_pretty(s.bytes) AS size, s.bytes, \
                greatest(c.reltuples, 0)::bigint AS rows_estimate \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' \
         CROSS JOIN LATERAL (SELECT CASE WHEN c.relkind = 'r' THEN pg_table_size(c.oid) \
                                         ELSE pg_relation_size(c.oid) END AS bytes) s \
         WHERE c.relkind IN ('r', 'i') \
         ORDER BY s.bytes DESC, c.relname",
    )
    .load(conn)
}
