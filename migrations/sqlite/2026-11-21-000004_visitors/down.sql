DROP TABLE idempotency_keys;
DROP TABLE consents;
DROP TABLE visitors;
