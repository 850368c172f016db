-- 0001_init.sql - Quorum's first schema: organizations, users and roles,
-- hashed API tokens, projects, tasks, lease history and annotations.
-- PostgreSQL is the system of record; constraints carry the invariants.

CREATE TABLE organizations (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    kind        text NOT NULL DEFAULT 'owner' CHECK (kind IN ('owner', 'vendor')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id          bigserial PRIMARY KEY,
    org_id      bigint NOT NULL REFERENCES organizations (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role        text NOT NULL CHECK (role IN ('admin', 'manager', 'reviewer', 'annotator')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);

-- Only a SHA-256 digest of a token is kept; the token is shown once.
CREATE TABLE api_tokens (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_sha256  text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    prefix        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    expires_at    timestamptz,
    revoked_at    timestamptz
);

CREATE TABLE projects (
    id                    bigserial PRIMARY KEY,
    org_id                bigint NOT NULL REFERENCES organizations (id),
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    labels                jsonb NOT NULL CHECK (jsonb_typeof(labels) = 'array'),
    annotations_per_task  integer NOT NULL DEFAULT 1 CHECK (annotations_per_task BETWEEN 1 AND 100),
    lease_ttl_ms          integer NOT NULL DEFAULT 60000 CHECK (lease_ttl_ms BETWEEN 1000 AND 86400000),
    created_by            bigint REFERENCES users (id),
    created_at            timestamptz NOT NULL DEFAULT now()
);

-- A task needs `required` annotations; done_count can never pass it, so a
-- task can never be over-filled whatever Redis says.
CREATE TABLE tasks (
    id          bigserial PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES projects (id),
    data        jsonb NOT NULL,
    state       text NOT NULL DEFAULT 'waiting' CHECK (state IN ('waiting', 'complete')),
    required    integer NOT NULL CHECK (required BETWEEN 1 AND 100),
    done_count  integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (done_count BETWEEN 0 AND required),
    CHECK ((state = 'complete') = (done_count = required))
);
CREATE INDEX tasks_project_id ON tasks (project_id, id);
CREATE INDEX tasks_open ON tasks (project_id, id) WHERE state <> 'complete';

-- History of leases that ended (the live ones are in Redis). A lease is
-- named by its fencing token, unique within its project.
CREATE TABLE leases (
    project_id     bigint NOT NULL REFERENCES projects (id),
    fencing_token  bigint NOT NULL,
    task_id        bigint NOT NULL REFERENCES tasks (id),
    annotator_id   bigint NOT NULL REFERENCES users (id),
    granted_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    ended_at       timestamptz NOT NULL DEFAULT now(),
    outcome        text NOT NULL CHECK (outcome IN ('submitted', 'released', 'skipped', 'expired')),
    PRIMARY KEY (project_id, fencing_token)
);

CREATE TABLE annotations (
    id               bigserial PRIMARY KEY,
    task_id          bigint NOT NULL REFERENCES tasks (id),
    project_id       bigint NOT NULL REFERENCES projects (id),
    annotator_id     bigint NOT NULL REFERENCES users (id),
    label            text NOT NULL,
    fencing_token    bigint NOT NULL,
    idempotency_key  text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    active_ms        integer CHECK (active_ms >= 0),
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (task_id, annotator_id),
    UNIQUE (annotator_id, idempotency_key)
);
CREATE INDEX annotations_project ON annotations (project_id, annotator_id);
