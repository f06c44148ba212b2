package reaper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const host = "host-a"

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// fakeDocker embeds the interface and overrides what a test needs.
type fakeDocker struct {
	Docker
	mu         sync.Mutex
	containers []Container
	listErr    error
	removeErr  map[string]error
	removed    []string
}

func (f *fakeDocker) ManagedContainers(context.Context) ([]Container, error) {
	return f.containers, f.listErr
}

func (f *fakeDocker) RemoveContainer(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.removeErr[id]; err != nil {
		return err
	}
	f.removed = append(f.removed, id)
	return nil
}

type fakeStore struct {
	Store
	mu      sync.Mutex
	rows    []Sandbox
	rowsErr error
	locked  bool
	calls   []string
}

func (f *fakeStore) LiveSandboxes(context.Context, string) ([]Sandbox, error) {
	return f.rows, f.rowsErr
}

func (f *fakeStore) LockHost(context.Context, string) (func(), bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.locked {
		return nil, false, nil
	}
	f.locked = true
	return func() { f.mu.Lock(); f.locked = false; f.mu.Unlock() }, true, nil
}

func (f *fakeStore) record(format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	return nil
}

func (f *fakeStore) BeginRemoval(_ context.Context, sb Sandbox, reason string) error {
	return f.record("begin %s %s", sb.ID, reason)
}

func (f *fakeStore) FinishRemoval(_ context.Context, sb Sandbox, reason string) error {
	return f.record("finish %s %s", sb.ID, reason)
}

func (f *fakeStore) FailCreate(_ context.Context, sb Sandbox, _ string) error {
	return f.record("fail %s", sb.ID)
}

func (f *fakeStore) AdoptOrphan(_ context.Context, c Container) (Sandbox, error) {
	f.record("adopt %s", c.ID)
	return Sandbox{ID: c.Labels[LabelSandboxID], ContainerID: c.ID}, nil
}

func (f *fakeStore) DeleteEnded(context.Context, string, time.Time, int) (int, error) { return 0, nil }

func ctr(id, sandbox string, created time.Time, labels ...string) Container {
	l := map[string]string{LabelManaged: "true", LabelHost: host, LabelSandboxID: sandbox}
	for i := 0; i+1 < len(labels); i += 2 {
		if labels[i+1] == "" {
			delete(l, labels[i])
		} else {
			l[labels[i]] = labels[i+1]
		}
	}
	return Container{ID: id, Labels: l, Created: created, State: "running"}
}

func row(id, state string, mutate ...func(*Sandbox)) Sandbox {
	sb := Sandbox{ID: id, ContainerID: "c-" + id, State: state, CreatedAt: t0.Add(-time.Hour), UpdatedAt: t0.Add(-time.Hour),
		ExpiresAt: t0.Add(time.Hour), LastActivityAt: t0.Add(-time.Minute)}
	for _, m := range mutate {
		m(&sb)
	}
	return sb
}

func newReaper(t *testing.T, d *fakeDocker, s *fakeStore, inSync bool) *Reaper {
	t.Helper()
	r, err := New(Config{HostID: host, Now: func() time.Time { return t0 }, InSync: func() bool { return inSync },
		Logger: slog.New(slog.DiscardHandler)}, d, s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRules(t *testing.T) {
	t.Parallel()
	finished := func(d time.Duration) func(*Sandbox) {
		return func(sb *Sandbox) { at := t0.Add(-d); sb.FinishedAt = &at }
	}
	for _, tc := range []struct {
		name       string
		rows       []Sandbox
		containers []Container
		listErr    error
		inSync     bool
		want       []string // "reason sandbox container"
	}{
		{name: "nothing to do", rows: []Sandbox{row("a", "running")}, containers: []Container{ctr("c-a", "a", t0.Add(-time.Hour))}, inSync: true},
		{name: "expired at the second", rows: []Sandbox{row("a", "running", func(sb *Sandbox) { sb.ExpiresAt = t0 })},
			containers: []Container{ctr("c-a", "a", t0.Add(-time.Hour))}, inSync: true, want: []string{"expired a c-a"}},
		{name: "not yet expired", rows: []Sandbox{row("a", "running", func(sb *Sandbox) { sb.ExpiresAt = t0.Add(time.Nanosecond) })},
			containers: []Container{ctr("c-a", "a", t0.Add(-time.Hour))}, inSync: true},
		{name: "idle", rows: []Sandbox{row("a", "running", func(sb *Sandbox) { sb.IdleTimeout = time.Minute })},
			containers: []Container{ctr("c-a", "a", t0.Add(-time.Hour))}, inSync: true, want: []string{"idle a c-a"}},
		{name: "not yet idle", rows: []Sandbox{row("a", "running", func(sb *Sandbox) { sb.IdleTimeout = time.Minute + time.Second })},
			containers: []Container{ctr("c-a", "a", t0.Add(-time.Hour))}, inSync: true},
		{name: "no idle timeout", rows: []Sandbox{row("a", "running", func(sb *Sandbox) { sb.LastActivityAt = t0.Add(-100 * time.Hour) })},
			containers: []Container{ctr("c-a", "a", t0.Add(-time.Hour))}, inSync: true},
		{name: "exited past grace", rows: []Sandbox{row("a", "exited", finished(DefaultExitedGrace+time.Second))},
			containers: []Container{ctr("c-a", "a", t0.Add(-time.Hour))}, inSync: true, want: []string{"exited a c-a"}},
		{name: "exited within grace", rows: []Sandbox{row("a", "exited", finished(DefaultExitedGrace))},
			containers: []Container{ctr("c-a", "a", t0.Add(-time.Hour))}, inSync: true},
		{name: "dead past grace", rows: []Sandbox{row("a", "dead", finished(time.Hour))},
			containers: []Container{ctr("c-a", "a", t0.Add(-time.Hour))}, inSync: true, want: []string{"exited a c-a"}},
		{name: "vanished", rows: []Sandbox{row("a", "running")}, inSync: true, want: []string{"vanished a c-a"}},
		{name: "vanished not judged when listing failed", rows: []Sandbox{row("a", "running")}, listErr: errors.New("engine down"), inSync: true},
		{name: "vanished not judged out of sync", rows: []Sandbox{row("a", "running")}, inSync: false},
		{name: "expired not acted on when listing failed", rows: []Sandbox{row("a", "running", func(sb *Sandbox) { sb.ExpiresAt = t0 })},
			listErr: errors.New("engine down"), inSync: true},
		{name: "orphan past grace", containers: []Container{ctr("c-x", "x", t0.Add(-DefaultOrphanGrace-time.Second))}, inSync: true,
			want: []string{"orphaned x c-x"}},
		{name: "orphan within grace", containers: []Container{ctr("c-x", "x", t0.Add(-DefaultOrphanGrace))}, inSync: true},
		{name: "orphan not judged out of sync", containers: []Container{ctr("c-x", "x", t0.Add(-time.Hour))}, inSync: false},
		{name: "no managed label: never touched", inSync: true, rows: []Sandbox{row("a", "running", func(sb *Sandbox) { sb.ExpiresAt = t0 })},
			containers: []Container{ctr("c-a", "a", t0.Add(-time.Hour), LabelManaged, ""), ctr("c-y", "y", t0.Add(-time.Hour), LabelManaged, "")},
			want:       []string{"vanished a c-a"}},
		{name: "another host: never touched", inSync: true,
			containers: []Container{ctr("c-y", "y", t0.Add(-time.Hour), LabelHost, "host-b"), ctr("c-z", "z", t0.Add(-time.Hour), LabelManaged, "false")}},
		{name: "stale creating with its container", rows: []Sandbox{row("a", "creating", func(sb *Sandbox) { sb.ContainerID = "" })},
			containers: []Container{ctr("c-a", "a", t0.Add(-time.Hour))}, inSync: true, want: []string{"stale_creating a c-a"}},
		{name: "stale creating without container", rows: []Sandbox{row("a", "creating", func(sb *Sandbox) { sb.ContainerID = "" })},
			inSync: true, want: []string{"stale_creating a "}},
		{name: "created and never started", rows: []Sandbox{row("a", "created")},
			containers: []Container{ctr("c-a", "a", t0.Add(-time.Hour))}, inSync: true, want: []string{"stale_creating a c-a"}},
		{name: "created within timeout", rows: []Sandbox{row("a", "created", func(sb *Sandbox) { sb.CreatedAt = t0.Add(-time.Minute) })},
			containers: []Container{ctr("c-a", "a", t0.Add(-time.Hour))}, inSync: true},
		{name: "creating within timeout", rows: []Sandbox{row("a", "creating", func(sb *Sandbox) { sb.ContainerID = ""; sb.CreatedAt = t0.Add(-time.Minute) })},
			inSync: true},
		{name: "removing cut short", rows: []Sandbox{row("a", "removing", func(sb *Sandbox) { sb.RemovalReason = "released" })},
			containers: []Container{ctr("c-a", "a", t0.Add(-time.Hour))}, inSync: true, want: []string{"removing a c-a"}},
		{name: "pooled: the pool's own, not expired", rows: []Sandbox{row("p", "pooled", func(sb *Sandbox) { sb.ExpiresAt = t0.Add(-time.Hour) })},
			containers: []Container{ctr("c-p", "p", t0.Add(-time.Hour))}, inSync: true},
		{name: "pooled and vanished", rows: []Sandbox{row("p", "pooled")}, inSync: true, want: []string{"vanished p c-p"}},
		{name: "removing under way", rows: []Sandbox{row("a", "removing", func(sb *Sandbox) { sb.UpdatedAt = t0.Add(-time.Second) })},
			containers: []Container{ctr("c-a", "a", t0.Add(-time.Hour))}, inSync: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := &fakeDocker{containers: tc.containers, listErr: tc.listErr}
			s := &fakeStore{rows: tc.rows}
			r := newReaper(t, d, s, tc.inSync)
			actions, err := r.Run(context.Background(), false)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range actions {
				got = append(got, fmt.Sprintf("%s %s %s", a.Reason, a.SandboxID, a.ContainerID))
				if !a.Done {
					t.Errorf("%s not done: %s", a, a.Error)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("actions = %q, want %q", got, tc.want)
			}
			// Only containers carrying both labels are ever removed.
			for _, id := range d.removed {
				i := slices.IndexFunc(tc.containers, func(c Container) bool { return c.ID == id })
				if i < 0 || !ours(tc.containers[i], host) {
					t.Errorf("removed %s, which is not ours", id)
				}
			}
		})
	}
}

// TestActions checks what each rule does to the row and the container.
func TestActions(t *testing.T) {
	t.Parallel()
	d := &fakeDocker{containers: []Container{ctr("c-a", "a", t0.Add(-time.Hour)), ctr("c-x", "x", t0.Add(-time.Hour)),
		ctr("c-s", "s", t0.Add(-time.Hour)), ctr("c-c", "c", t0.Add(-time.Hour))}}
	s := &fakeStore{rows: []Sandbox{
		row("a", "running", func(sb *Sandbox) { sb.ExpiresAt = t0.Add(-time.Second) }),
		row("v", "exited"),
		row("s", "creating", func(sb *Sandbox) { sb.ContainerID = "" }),
		row("c", "created"),
	}}
	r := newReaper(t, d, s, true)
	if _, err := r.Run(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	slices.Sort(s.calls)
	want := []string{"adopt c-x", "begin a expired", "begin c failed", "fail s", "finish a expired", "finish c failed",
		"finish v vanished", "finish x orphaned"}
	if !slices.Equal(s.calls, want) {
		t.Errorf("store calls = %q, want %q", s.calls, want)
	}
	slices.Sort(d.removed)
	if want := []string{"c-a", "c-c", "c-s", "c-x"}; !slices.Equal(d.removed, want) {
		t.Errorf("removed = %q, want %q", d.removed, want)
	}
}

// TestDryRun plans exactly what a real run then does, and changes nothing.
func TestDryRun(t *testing.T) {
	t.Parallel()
	d := &fakeDocker{containers: []Container{ctr("c-a", "a", t0.Add(-time.Hour)), ctr("c-x", "x", t0.Add(-time.Hour))}}
	s := &fakeStore{rows: []Sandbox{row("a", "running", func(sb *Sandbox) { sb.ExpiresAt = t0 }), row("v", "running")}}
	r := newReaper(t, d, s, true)
	planned, err := r.Run(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.removed) != 0 || len(s.calls) != 0 {
		t.Fatalf("dry run acted: removed %v, store %v", d.removed, s.calls)
	}
	done, err := r.Run(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	key := func(as []Action) []string {
		var out []string
		for _, a := range as {
			out = append(out, fmt.Sprintf("%s %s %s", a.Reason, a.SandboxID, a.ContainerID))
		}
		return out
	}
	if !slices.Equal(key(planned), key(done)) || len(planned) != 3 {
		t.Errorf("dry run planned %q, run did %q", key(planned), key(done))
	}
	for _, a := range planned {
		if a.Done {
			t.Errorf("dry-run action %s says done", a)
		}
	}
}

// TestFailureRetriedAndLoggedOnce: a container that will not go is retried
// on every pass and logged when the streak starts and when it ends.
func TestFailureRetriedAndLoggedOnce(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	var mu sync.Mutex
	d := &fakeDocker{containers: []Container{ctr("c-a", "a", t0.Add(-time.Hour))}, removeErr: map[string]error{"c-a": errors.New("device busy")}}
	s := &fakeStore{rows: []Sandbox{row("a", "running", func(sb *Sandbox) { sb.ExpiresAt = t0 })}}
	r, err := New(Config{HostID: host, Now: func() time.Time { return t0 },
		Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))}, d, s)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		actions, err := r.Run(context.Background(), false)
		if err != nil || len(actions) != 1 || actions[0].Done || !strings.Contains(actions[0].Error, "device busy") {
			t.Fatalf("pass: %+v, %v", actions, err)
		}
	}
	if n := strings.Count(logs.String(), "device busy"); n != 1 {
		t.Errorf("failure logged %d times over 3 passes, want once:\n%s", n, logs.String())
	}
	d.removeErr = nil
	if actions, _ := r.Run(context.Background(), false); len(actions) != 1 || !actions[0].Done {
		t.Fatalf("pass after the fault cleared: %+v", actions)
	}
	if !strings.Contains(logs.String(), "reaper recovered") {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestHostLock: a pass does not run while another holds the host's lock.
func TestHostLock(t *testing.T) {
	t.Parallel()
	s := &fakeStore{locked: true}
	r := newReaper(t, &fakeDocker{}, s, true)
	if _, err := r.Run(context.Background(), false); !errors.Is(err, ErrBusy) {
		t.Errorf("err = %v, want ErrBusy", err)
	}
}

func TestBadSchedule(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{HostID: host, Schedule: "every tuesday"}, &fakeDocker{}, &fakeStore{}); err == nil || !strings.Contains(err.Error(), "--reap-schedule") {
		t.Errorf("err = %v", err)
	}
}

// panickyStore panics on its first listing, then counts the passes.
type panickyStore struct {
	fakeStore
	calls atomic.Int32
}

func (p *panickyStore) LiveSandboxes(ctx context.Context, host string) ([]Sandbox, error) {
	if p.calls.Add(1) == 1 {
		panic("store blew up")
	}
	return nil, nil
}

// TestScheduleSurvivesPanic: a pass that panics is recovered, and the
// schedule goes on with the next passes.
func TestScheduleSurvivesPanic(t *testing.T) {
	t.Parallel()
	s := &panickyStore{}
	r, err := New(Config{HostID: host, Schedule: "@every 1s"}, &fakeDocker{}, s)
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	defer r.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for s.calls.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d passes after a panic, want the schedule to go on", s.calls.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
