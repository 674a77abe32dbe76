-- Operators: people on call who act on the gateway through the operator services, each with
-- client certificates issued by the gateway CA. One row per certificate; an operator (by name)
-- has at most one certificate in use at a time, so a name always means one live identity.
CREATE TABLE operator_certs (
    fingerprint BYTEA  PRIMARY KEY,   -- SHA-256 of the certificate's DER
    name        TEXT   NOT NULL,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT                -- NULL: in use
);
CREATE UNIQUE INDEX operator_certs_live ON operator_certs (name) WHERE revoked_at IS NULL;

-- The audit trail: every operator action, who did it, on what selection, how many letters,
-- when and with what result. Written in its own committed transaction before the action's
-- answer goes out; never holds letter content or recipient ids.
CREATE TABLE audit (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        BIGINT NOT NULL,
    operator  TEXT   NOT NULL,
    action    TEXT   NOT NULL,
    selection TEXT   NOT NULL,
    letters   BIGINT NOT NULL,
    result    TEXT   NOT NULL
);
CREATE INDEX audit_at ON audit (at);
