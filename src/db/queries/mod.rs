//! Plain query functions over a `PgConnection`, one file per table or concern.

pub mod benchmarks;
pub mod chains;
pub mod derive;
pub mod instances;
pub mod logs;
pub mod nodes;
pub mod partitions;
pub mod prepared;
pub mod purge;
pub mod reputation;
pub mod stats;
