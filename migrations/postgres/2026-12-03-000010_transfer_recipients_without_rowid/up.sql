-- The SQLite migration of the same name stores `transfer_recipients` as the B-tree of its
-- primary key (WITHOUT ROWID). PostgreSQL tables are heaps with separate indexes and have no
-- such option, so there is nothing to change here; the folder keeps the two backends'
-- migrations in lockstep.
SELECT 1;
