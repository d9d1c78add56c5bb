DROP TABLE tetcore_late_batches;
