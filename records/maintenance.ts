/**
 * The upkeep a PostgreSQL server's autovacuum and checkpointer do, for the embedded database: PGlite is one standalone
 * backend, which has neither. Without it nothing is ever analyzed (the planner guesses row counts, and sorted a
 * caller's 20,000 rows for a page of 50), what retention and withdrawals delete is never made reusable (the tables only
 * grow), no row is ever frozen, and no checkpoint runs until the database is closed (pg_wal keeps every byte written
 * since the start: 2.7 GB after 2.4 million audit events). VACUUM database-wide, not the records tables alone: the
 * catalog rows the migrations wrote (the tables themselves) must be frozen too before 2^31 transactions have passed
 * them, or they vanish, and a standalone backend does not stop before that as a server does. Each its own statement
 * (VACUUM cannot run in a transaction, and PGlite runs a multi-statement text as one); statements sent meanwhile wait
 * behind them (docs/records.md#maintenance).
 */
export const VACUUM_STATEMENT = 'VACUUM (ANALYZE)'
/** Run whether the VACUUM succeeded or not: a full disk, the likeliest failure, is what an unrecycled pg_wal makes. */
export const CHECKPOINT_STATEMENT = 'CHECKPOINT'

/** The first run a minute after the store opens (a new database has rows to analyze by then), then hourly. */
export const MAINTENANCE_FIRST_MS = 60_000
export const MAINTENANCE_EVERY_MS = 3_600_000
