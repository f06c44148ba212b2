DROP TRIGGER docker_container_events_no_update ON docker_container_events;
DROP FUNCTION docker_container_events_append_only();
DROP TABLE docker_container_events;
DROP TABLE docker_containers;
