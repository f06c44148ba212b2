package store

import (
	"errors"
	"fmt"
	"slices"
)

// State is where a sandbox is in its life. The values are stored in
// docker_containers.state; docs/schema.md draws the machine.
type State string

// The states of a sandbox. Creating and failed are sandboxd's own; the rest
// mirror the Docker container states, plus removing and removed.
const (
	Creating   State = "creating"   // row written, container not made yet
	Created    State = "created"    // container exists, not started
	Running    State = "running"    // container running
	Paused     State = "paused"     // container frozen
	Restarting State = "restarting" // container being restarted by the engine
	Exited     State = "exited"     // process ended; container kept for its exit code
	Dead       State = "dead"       // the engine failed to remove or stop it
	Removing   State = "removing"   // sandboxd is stopping and removing it
	Removed    State = "removed"    // container gone; row kept for history
	Failed     State = "failed"     // creation failed; any container made was removed
	Pooled     State = "pooled"     // started ahead of demand; no project until claimed
)

// States lists every state, in the order of a sandbox's life.
var States = []State{Creating, Created, Running, Paused, Restarting, Exited, Dead, Removing, Removed, Failed, Pooled}

// transitions is the whole state machine: every change of state that any
// code path writes is checked against it.
//
// Removal has two paths. sandboxd's own removals go through removing, so a
// crash midway leaves a row that says what was under way. Removals that
// sandboxd only observes (a destroy event for a container someone else
// removed, a container found vanished) go from any live state straight to
// removed, because nothing was ever "removing" on our side.
var transitions = map[State][]State{
	// A creating row has no container id yet, so it cannot become removing
	// or removed: if its container turns up (after a crash between create
	// and the id being written) it takes the container's state; if not, it
	// fails.
	Creating:   {Created, Running, Exited, Dead, Failed},
	Created:    {Running, Exited, Dead, Removing, Removed},
	Running:    {Paused, Restarting, Exited, Dead, Removing, Removed},
	Paused:     {Running, Exited, Dead, Removing, Removed},
	Restarting: {Running, Exited, Dead, Removing, Removed},
	// An exited container comes back only when someone starts it again
	// behind sandboxd's back; the table follows the engine.
	Exited: {Running, Restarting, Dead, Removing, Removed},
	Dead:   {Removing, Removed},
	// A claim turns a pooled sandbox into a running one; a pool container
	// can also die, be retired or vanish before anyone claims it.
	Pooled:   {Running, Exited, Dead, Removing, Removed},
	Removing: {Removed},
	Removed:  {},
	Failed:   {},
}

// enterableFrom lists, for each state, the states the machine allows
// entering it from (itself included), as the fast path of Transition
// passes them to SQL.
var enterableFrom = func() map[State][]string {
	m := map[State][]string{}
	for _, to := range States {
		for _, from := range States {
			if CheckTransition(from, to) == nil {
				m[to] = append(m[to], string(from))
			}
		}
	}
	return m
}()

// ErrInvalidTransition is returned, wrapped in a *TransitionError, when a
// change of state is not in the state machine.
var ErrInvalidTransition = errors.New("invalid state transition")

// TransitionError names a refused transition.
type TransitionError struct {
	From, To State
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("invalid state transition %s -> %s", e.From, e.To)
}

// Is makes errors.Is(err, ErrInvalidTransition) true.
func (e *TransitionError) Is(target error) bool { return target == ErrInvalidTransition }

// Valid reports whether s is a known state.
func (s State) Valid() bool { return slices.Contains(States, s) }

// Live reports whether a sandbox in state s may still have a container on the
// engine: every state but removed and failed.
func (s State) Live() bool { return s.Valid() && s != Removed && s != Failed }

// CheckTransition returns nil when the state machine allows from -> to, and
// a *TransitionError otherwise. Staying in the same state is allowed: an
// event that confirms what the row already says changes nothing.
func CheckTransition(from, to State) error {
	if from == to && from.Valid() {
		return nil
	}
	if slices.Contains(transitions[from], to) {
		return nil
	}
	return &TransitionError{From: from, To: to}
}

// Reason says why a sandbox was removed (docker_containers.removal_reason).
type Reason string

// The removal reasons.
const (
	ReasonReleased Reason = "released" // the API caller deleted it
	ReasonExpired  Reason = "expired"  // expires_at passed
	ReasonIdle     Reason = "idle"     // no activity for idle_timeout_seconds
	ReasonExited   Reason = "exited"   // its process ended and the grace passed
	ReasonOrphaned Reason = "orphaned" // a labelled container with no live row
	ReasonVanished Reason = "vanished" // the container was found gone
	ReasonExternal Reason = "external" // removed by someone else (destroy event)
	ReasonFailed   Reason = "failed"   // creation failed
	ReasonRetired  Reason = "retired"  // a pool container the pool replaced or no longer wants
)

// Source says who recorded an event (docker_container_events.source).
type Source string

// The event sources.
const (
	SourceDocker    Source = "docker"
	SourceAPI       Source = "api"
	SourceReaper    Source = "reaper"
	SourceReconcile Source = "reconcile"
)
