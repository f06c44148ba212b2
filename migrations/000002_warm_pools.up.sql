-- Warm pools: sandboxes started ahead of demand, in state pooled, without a
-- project until a create claims one. docs/schema.md explains the columns.
ALTER TABLE docker_containers DROP CONSTRAINT docker_containers_state_valid;
ALTER TABLE docker_containers ADD CONSTRAINT docker_containers_state_valid
    CHECK (state IN ('creating', 'created', 'running', 'paused', 'restarting',
                     'exited', 'dead', 'removing', 'removed', 'failed', 'pooled'));

-- Where a sandbox came from: made for its request (cold), or started ahead
-- in a pool (pool).
ALTER TABLE docker_containers ADD COLUMN acquired_from text NOT NULL DEFAULT 'cold'
    CONSTRAINT docker_containers_acquired_from_valid CHECK (acquired_from IN ('cold', 'pool'));

-- A pool sandbox belongs to no project until a create claims it, and keeps
-- none if it ends unclaimed (retired, died); every other one has a project.
ALTER TABLE docker_containers ALTER COLUMN project_id DROP NOT NULL;
ALTER TABLE docker_containers ADD CONSTRAINT docker_containers_project_present
    CHECK (project_id IS NOT NULL OR acquired_from = 'pool');
ALTER TABLE docker_containers ADD CONSTRAINT docker_containers_pooled_unclaimed
    CHECK (state <> 'pooled' OR (project_id IS NULL AND acquired_from = 'pool'));

-- Pool containers that the pool itself retires (too old, or their image no
-- longer pooled) end with reason retired.
ALTER TABLE docker_containers DROP CONSTRAINT docker_containers_removal_reason_valid;
ALTER TABLE docker_containers ADD CONSTRAINT docker_containers_removal_reason_valid
    CHECK (removal_reason IN ('released', 'expired', 'idle', 'exited',
                              'orphaned', 'vanished', 'external', 'failed', 'retired'));

-- The ready sandboxes of a pool, oldest first: what a claim takes.
CREATE INDEX docker_containers_pooled
    ON docker_containers (host_id, image, created_at)
    WHERE state = 'pooled';
