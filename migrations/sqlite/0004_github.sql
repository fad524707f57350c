-- Keep this file and the other database's 0004_github.sql the same.

-- GitHub deliveries already acted on (X-GitHub-Delivery): a redelivery is acknowledged, once.
CREATE TABLE github_deliveries (
    delivery TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
