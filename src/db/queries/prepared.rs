//! Hand-written statements that PostgreSQL plans once per connection.
//!
//! Diesel's `sql_query` is never kept as a prepared statement, so PostgreSQL plans it on every
//! call. For a read of `tetcore_logs`, whose partitions and their indexes all enter the plan,
//! planning costs more than running (measured at 10 M rows, 52 partitions: 4.5 ms planning,
//! 1.7 ms running for a node's newest 100 messages). `prepared` takes only `&'static str`, so
//! the statements a connection keeps are bounded by the program's text; diesel keeps each by its
//! SQL and bind types, and PostgreSQL's plan cache reuses a generic plan when its estimate is not
//! worse than planning for the values (partitions are then pruned when the statement starts).
//! Statements meant for it should say in their SQL which filters apply rather than switch them
//! off with `$n IS NULL OR …`, which a generic plan cannot fold away.

use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};
use diesel::{QueryResult, RunQueryDsl};

/// A statement whose text is part of the program; bind its parameters in order with `bind`.
pub fn prepared(sql: &'static str) -> Prepared<()> {
    Prepared { sql, binds: () }
}

#[must_use = "a statement does nothing until it is loaded or executed"]
pub struct Prepared<B> {
    sql: &'static str,
    binds: B,
}

/// The parameters bound so far, the last one outermost.
pub struct Bind<B, V, ST> {
    earlier: B,
    value: V,
    sql_type: PhantomData<ST>,
}

impl<B> Prepared<B> {
    pub fn bind<ST, V>(self, value: V) -> Prepared<Bind<B, V, ST>> {
        Prepared {
            sql: self.sql,
            binds: Bind {
                earlier: self.binds,
                value,
                sql_type: PhantomData,
            },
        }
    }
}

// Diesel's public interface writes a parameter's placeholder where its value is pushed, and
// the statement's own text already holds them where they belong: the pushed ones go into a
// comment ahead of it, `/* $1 $2 */ SELECT …`, which PostgreSQL ignores.
impl<B: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<B> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("/*");
        self.binds.walk_ast(out.reborrow())?;
        out.push_sql(" */ ");
        out.push_sql(self.sql);
        Ok(())
    }
}

impl<B, V, ST> QueryFragment<Pg> for Bind<B, V, ST>
where
    B: QueryFragment<Pg>,
    Pg: HasSqlType<ST>,
    V: ToSql<ST, Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.earlier.walk_ast(out.reborrow())?;
        out.push_sql(" ");
        out.push_bind_param::<ST, V>(&self.value)
    }
}

// Not identified by type: diesel keys the statement by its SQL and bind types instead.
impl<B> QueryId for Prepared<B> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<B> Query for Prepared<B> {
    type SqlType = Untyped;
}

impl<C, B> RunQueryDsl<C> for Prepared<B> {}
