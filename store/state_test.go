package store_test

import (
	"errors"
	"testing"

	"github.com/sandboxd/sandboxd/store"
)

// allowed is the state machine of docs/schema.md, written out by hand so
// that a change to the code's table must be made here too, on purpose.
var allowed = map[[2]store.State]bool{
	{"creating", "created"}: true, {"creating", "running"}: true, {"creating", "exited"}: true,
	{"creating", "dead"}: true, {"creating", "failed"}: true,

	{"created", "running"}: true, {"created", "exited"}: true, {"created", "dead"}: true,
	{"created", "removing"}: true, {"created", "removed"}: true,

	{"running", "paused"}: true, {"running", "restarting"}: true, {"running", "exited"}: true,
	{"running", "dead"}: true, {"running", "removing"}: true, {"running", "removed"}: true,

	{"paused", "running"}: true, {"paused", "exited"}: true, {"paused", "dead"}: true,
	{"paused", "removing"}: true, {"paused", "removed"}: true,

	{"restarting", "running"}: true, {"restarting", "exited"}: true, {"restarting", "dead"}: true,
	{"restarting", "removing"}: true, {"restarting", "removed"}: true,

	{"exited", "running"}: true, {"exited", "restarting"}: true, {"exited", "dead"}: true,
	{"exited", "removing"}: true, {"exited", "removed"}: true,

	{"dead", "removing"}: true, {"dead", "removed"}: true,

	{"removing", "removed"}: true,

	{"pooled", "running"}: true, {"pooled", "exited"}: true, {"pooled", "dead"}: true,
	{"pooled", "removing"}: true, {"pooled", "removed"}: true,
}

func isAllowed(from, to store.State) bool { return from == to || allowed[[2]store.State{from, to}] }

func TestCheckTransition(t *testing.T) {
	t.Parallel()
	for _, from := range store.States {
		for _, to := range store.States {
			err := store.CheckTransition(from, to)
			if want := isAllowed(from, to); want != (err == nil) {
				t.Errorf("CheckTransition(%s, %s) = %v, want allowed=%v", from, to, err, want)
			}
			if err != nil && !errors.Is(err, store.ErrInvalidTransition) {
				t.Errorf("CheckTransition(%s, %s) = %v, not ErrInvalidTransition", from, to, err)
			}
		}
	}
	if err := store.CheckTransition("bogus", "running"); err == nil {
		t.Error("transition from an unknown state allowed")
	}
	if err := store.CheckTransition("running", "bogus"); err == nil {
		t.Error("transition to an unknown state allowed")
	}
}

func TestLive(t *testing.T) {
	t.Parallel()
	for _, s := range store.States {
		want := s != store.Removed && s != store.Failed
		if s.Live() != want {
			t.Errorf("%s.Live() = %v, want %v", s, s.Live(), want)
		}
	}
}
