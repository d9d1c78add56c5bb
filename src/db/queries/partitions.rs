//! The time partitions of `tetcore_logs_expiring`, created ahead of the rows that need them.

use diesel::pg::PgConnection;
use diesel::sql_types::Integer;
use diesel::{sql_query, QueryResult, QueryableByName, RunQueryDsl};

#[derive(QueryableByName)]
struct Created {
    #[diesel(sql_type = Integer)]
    created: i32,
}

/// Creates the partitions `width_hours` wide from a day ago to `days_ahead` days from now, if
/// missing. Returns how many it created.
pub fn ensure_ahead(
    conn: &mut PgConnection,
    width_hours: i32,
    days_ahead: i32,
) -> QueryResult<i32> {
    let row: Created = sql_query(
        "SELECT tetcore_ensure_log_partitions(now() - interval '1 day', \
                now() + make_interval(days => $2), $1) AS created",
    )
    .bind::<Integer, _>(width_hours)
    .bind::<Integer, _>(days_ahead)
    .get_result(conn)?;
    Ok(row.created)
}
