//! The time partitions of `tetcore_logs_expiring`, created ahead of the rows that need them
//! (never behind the retention, so a pass does not make what it then drops).

use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::sql_types::{Double, Integer};
use diesel::{sql_query, QueryResult, QueryableByName, RunQueryDsl};

#[derive(QueryableByName)]
struct Created {
    #[diesel(sql_type = Integer)]
    created: i32,
}

/// Creates the partitions `width_hours` wide from `behind` ago (at most a day: older rows have
/// their partitions already, or expired) to `days_ahead` days from now, if missing. Returns how
/// many it created.
pub fn ensure_ahead(
    conn: &mut PgConnection,
    width_hours: i32,
    behind: Duration,
    days_ahead: i32,
) -> QueryResult<i32> {
    let behind = behind.min(Duration::from_secs(86_400)).as_secs_f64();
    let row: Created = sql_query(
        "SELECT tetcore_ensure_log_partitions(now() - make_interval(secs => $3), \
                now() + make_interval(days => $2), $1) AS created",
    )
    .bind::<Integer, _>(width_hours)
    .bind::<Integer, _>(days_ahead)
    .bind::<Double, _>(behind)
    .get_result(conn)?;
    Ok(row.created)
}

/// Days of partitions to keep ready ahead of now: a week, and at least two purge intervals
/// (each purge pass makes the missing ones), so rows always find their partition.
pub fn days_ahead(purge_interval: Duration) -> i32 {
    let intervals = (purge_interval.as_secs() * 2).div_ceil(86_400) + 1;
    i32::try_from(intervals).unwrap_or(i32::MAX).max(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_reach_two_purge_intervals_ahead_and_at_least_a_week() {
        assert_eq!(days_ahead(Duration::from_secs(600)), 7);
        assert_eq!(days_ahead(Duration::from_secs(86_400 * 5)), 11);
        assert_eq!(days_ahead(Duration::from_secs(u64::MAX / 4)), i32::MAX);
    }
}
