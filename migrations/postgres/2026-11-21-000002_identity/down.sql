DROP TABLE platform_keys;
DROP TABLE clients;
DROP TABLE api_keys;
DROP TABLE users;
