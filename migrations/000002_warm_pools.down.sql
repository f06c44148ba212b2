-- Pool rows cannot exist without the pool's columns: they go first.
DELETE FROM docker_containers WHERE acquired_from = 'pool' OR removal_reason = 'retired';

DROP INDEX docker_containers_pooled;

ALTER TABLE docker_containers DROP CONSTRAINT docker_containers_removal_reason_valid;
ALTER TABLE docker_containers ADD CONSTRAINT docker_containers_removal_reason_valid
    CHECK (removal_reason IN ('released', 'expired', 'idle', 'exited',
                              'orphaned', 'vanished', 'external', 'failed'));

ALTER TABLE docker_containers DROP CONSTRAINT docker_containers_pooled_unclaimed;
ALTER TABLE docker_containers DROP CONSTRAINT docker_containers_project_present;
ALTER TABLE docker_containers ALTER COLUMN project_id SET NOT NULL;

ALTER TABLE docker_containers DROP COLUMN acquired_from;

ALTER TABLE docker_containers DROP CONSTRAINT docker_containers_state_valid;
ALTER TABLE docker_containers ADD CONSTRAINT docker_containers_state_valid
    CHECK (state IN ('creating', 'created', 'running', 'paused', 'restarting',
                     'exited', 'dead', 'removing', 'removed', 'failed'));
