DROP TABLE access_requests;
DROP TABLE notices;
