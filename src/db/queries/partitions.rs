//! Daily partitions of `tetcore_logs_expiring`, created ahead of the rows that need them.

use diesel::pg::PgConnection;
use diesel::sql_types::Integer;
use diesel::{sql_query, QueryResult, QueryableByName, RunQueryDsl};

#[derive(QueryableByName)]
struct Created {
    #[diesel(sql_type = Integer)]
    created: i32,
}

/// Creates the partitions for yesterday through `days_ahead` days from today (UTC), if missing.
/// Returns how many it created.
pub fn ensure_ahead(conn: &mut PgConnection, days_ahead: i32) -> QueryResult<i32> {
    let row: Created = sql_query(
        "SELECT tetcore_ensure_log_partitions((now() AT TIME ZONE 'UTC')::date - 1, $1 + 2) AS created",
    )
    .bind::<Integer, _>(days_ahead)
    .get_result(conn)?;
    Ok(row.created)
}
