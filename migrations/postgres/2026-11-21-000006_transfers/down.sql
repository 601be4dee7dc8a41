DROP TABLE erasure_notices;
DROP TABLE transfer_recipients;
DROP TABLE transfers;
DROP TABLE subprocessor_authorizations;
DROP TABLE subprocessors;
