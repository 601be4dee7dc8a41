-- No query looks an audit event up by its id: the API pages a chain by seq, filters it by
-- action, actor and time, and finds a record's events through the target index. The unique
-- index on `id` was one more B-tree insert and about 80 bytes written per event (on SQLite an
-- eighth of what each audited read or pulled record writes to the audit log) and served
-- nothing. Ids stay unique by construction (ULIDs: a millisecond time and 80 random bits), and
-- each is covered by its event's hash, so verify still detects an edited one.
DROP INDEX audit_events_id;
