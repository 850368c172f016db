-- 0009_client_certs.sql - mutual TLS for agents (issue 7, item 3): a client
-- certificate that quorumd verified against its --client-ca bundle stands
-- for the user it is mapped to here, as a bearer token would. Only the
-- SHA-256 of the certificate's DER encoding is kept (what the broker hashes
-- during the handshake); the subject and expiry are for the people reading
-- `quorumctl cert list`. Revoking keeps the row, like api_tokens.
CREATE TABLE client_certs (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    cert_sha256   text NOT NULL CHECK (cert_sha256 ~ '^[0-9a-f]{64}$'),
    subject       text NOT NULL CHECK (length(subject) <= 1000),
    not_after     timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
-- One live mapping per certificate; a revoked one may be mapped again.
CREATE UNIQUE INDEX client_certs_live ON client_certs (cert_sha256) WHERE revoked_at IS NULL;
CREATE INDEX client_certs_user ON client_certs (user_id);
