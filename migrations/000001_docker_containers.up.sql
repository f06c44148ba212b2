-- docker_containers: one row per sandbox container that a sandboxd daemon
-- created, or found carrying its labels and recorded. docs/schema.md explains
-- every column.
CREATE TABLE docker_containers (
    id                   uuid        PRIMARY KEY,
    project_id           text        NOT NULL
        CONSTRAINT docker_containers_project_id_format
        CHECK (project_id ~ '^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$'),
    host_id              text        NOT NULL
        CONSTRAINT docker_containers_host_id_format
        CHECK (length(host_id) BETWEEN 1 AND 253),
    container_id         text        UNIQUE
        CONSTRAINT docker_containers_container_id_format
        CHECK (container_id ~ '^[0-9a-f]{64}$'),
    container_name       text        NOT NULL,
    image                text        NOT NULL,
    image_id             text,
    state                text        NOT NULL
        CONSTRAINT docker_containers_state_valid
        CHECK (state IN ('creating', 'created', 'running', 'paused', 'restarting',
                         'exited', 'dead', 'removing', 'removed', 'failed')),
    exit_code            integer,
    oom_killed           boolean     NOT NULL DEFAULT false,
    memory_bytes         bigint      NOT NULL CHECK (memory_bytes > 0),
    nano_cpus            bigint      NOT NULL CHECK (nano_cpus > 0),
    pids_limit           integer     NOT NULL CHECK (pids_limit > 0),
    labels               jsonb       NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(labels) = 'object'),
    idempotency_key      text
        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
    requested_by_uid     integer,
    requested_by_pid     integer,
    created_at           timestamptz NOT NULL DEFAULT now(),
    started_at           timestamptz,
    finished_at          timestamptz,
    expires_at           timestamptz NOT NULL,
    idle_timeout_seconds integer     NOT NULL DEFAULT 0 CHECK (idle_timeout_seconds >= 0),
    last_activity_at     timestamptz NOT NULL DEFAULT now(),
    last_event_at        timestamptz,
    removed_at           timestamptz,
    removal_reason       text
        CONSTRAINT docker_containers_removal_reason_valid
        CHECK (removal_reason IN ('released', 'expired', 'idle', 'exited',
                                  'orphaned', 'vanished', 'external', 'failed')),
    error                text,
    updated_at           timestamptz NOT NULL DEFAULT now(),

    -- Only a row whose container has not been made yet (creating), or never
    -- was (failed), may lack a container id.
    CONSTRAINT docker_containers_container_id_present
        CHECK (container_id IS NOT NULL OR state IN ('creating', 'failed')),
    -- A removed row always says when and why.
    CONSTRAINT docker_containers_removed_complete
        CHECK ((state = 'removed') = (removed_at IS NOT NULL)
               AND (state <> 'removed' OR removal_reason IS NOT NULL))
);

-- Idempotent creates: one sandbox per (project, key). A failed attempt does
-- not hold the key, so a client may retry it.
CREATE UNIQUE INDEX docker_containers_idempotency
    ON docker_containers (project_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND state <> 'failed';

-- Live rows per host and state: the live rows of a host (reconcile, the
-- reaper's pass, listing) and the create quotas.
CREATE INDEX docker_containers_live_host_state
    ON docker_containers (host_id, state)
    WHERE state NOT IN ('removed', 'failed');

-- Live rows by expiry: for operators' expiry queries (which sandboxes end
-- next); the reaper reads all live rows of its host instead.
CREATE INDEX docker_containers_live_expires
    ON docker_containers (host_id, expires_at)
    WHERE state NOT IN ('removed', 'failed');

-- Live rows per project, newest first: listing one project's sandboxes.
CREATE INDEX docker_containers_live_project
    ON docker_containers (project_id, created_at DESC)
    WHERE state NOT IN ('removed', 'failed');

-- Every row newest first: listing with all=true.
CREATE INDEX docker_containers_created
    ON docker_containers (created_at DESC);

-- Retention: removed and failed rows by age.
CREATE INDEX docker_containers_ended
    ON docker_containers (host_id, updated_at)
    WHERE state IN ('removed', 'failed');

-- docker_container_events: what happened to each container, append-only.
CREATE TABLE docker_container_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sandbox_id  uuid        REFERENCES docker_containers (id) ON DELETE CASCADE,
    container_id text,
    action      text        NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    source      text        NOT NULL
        CONSTRAINT docker_container_events_source_valid
        CHECK (source IN ('docker', 'api', 'reaper', 'reconcile')),
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    attributes  jsonb       NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(attributes) = 'object')
);

CREATE INDEX docker_container_events_sandbox
    ON docker_container_events (sandbox_id, occurred_at);

-- History is never rewritten; rows leave only with their sandbox (retention).
CREATE FUNCTION docker_container_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'docker_container_events is append-only';
END;
$$;

CREATE TRIGGER docker_container_events_no_update
    BEFORE UPDATE ON docker_container_events
    FOR EACH ROW EXECUTE FUNCTION docker_container_events_append_only();
