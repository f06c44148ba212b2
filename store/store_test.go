package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sandboxd/sandboxd/internal/testenv"
	"github.com/sandboxd/sandboxd/store"
)

const host = "host-test"

func newSandbox(project string) store.Sandbox {
	id := uuid.NewString()
	return store.Sandbox{
		ID: id, ProjectID: project, HostID: host, ContainerName: "sandboxd-" + id,
		Image: testenv.Image, MemoryBytes: 64 << 20, NanoCPUs: 1e9, PidsLimit: 64,
		Labels: map[string]string{"purpose": "test"}, ExpiresAt: time.Now().Add(time.Hour),
	}
}

func insert(t *testing.T, st *store.Store, sb store.Sandbox) store.Sandbox {
	t.Helper()
	got, existing, err := st.InsertIntent(context.Background(), sb, store.Quota{})
	if err != nil || existing {
		t.Fatalf("InsertIntent: existing=%v err=%v", existing, err)
	}
	return got
}

func containerID(id string) string {
	u := uuid.MustParse(id)
	return fmt.Sprintf("%x%x", u[:], u[:])
}

// clock hands out strictly increasing times, as Docker's event times are.
type clock struct{ t time.Time }

func (c *clock) next() time.Time {
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

// pathTo returns allowed transitions leading from creating to target.
func pathTo(target store.State) []store.State {
	paths := map[store.State][]store.State{store.Creating: nil}
	queue := []store.State{store.Creating}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, next := range store.States {
			if _, seen := paths[next]; seen || !isAllowed(cur, next) {
				continue
			}
			paths[next] = append(slices.Clone(paths[cur]), next)
			queue = append(queue, next)
		}
	}
	return paths[target]
}

func change(to store.State, at time.Time, cid string) store.Change {
	c := store.Change{To: to, At: at, ContainerID: cid,
		Event: store.Event{Action: string(to), Source: store.SourceAPI}}
	switch to {
	case store.Exited, store.Dead:
		code := 3
		c.ExitCode = &code
	case store.Removing, store.Removed:
		c.Reason = store.ReasonReleased
	case store.Failed:
		c.Reason, c.Error = store.ReasonFailed, "boom"
	}
	if to == store.Failed {
		c.ContainerID = ""
	}
	return c
}

// TestTransitions drives a row into every state and tries every transition
// from it: the allowed ones are applied with their side effects, the refused
// ones are errors that change nothing.
func TestTransitions(t *testing.T) {
	t.Parallel()
	st, _ := testenv.Store(t)
	ctx := context.Background()
	clk := &clock{t: time.Now().Add(time.Hour)} // after the rows' own insert times
	for _, from := range store.States {
		for _, to := range store.States {
			if from == to {
				continue
			}
			sb := newSandbox("transitions")
			cid := containerID(sb.ID)
			if from == store.Pooled {
				// Pool sandboxes start pooled, their container already running.
				sb.ContainerID = cid
				var err error
				if sb, err = st.InsertPooled(ctx, sb); err != nil {
					t.Fatal(err)
				}
			} else {
				sb = insert(t, st, sb)
			}
			for _, s := range pathTo(from) {
				if _, err := st.Transition(ctx, sb.ID, change(s, clk.next(), cid)); err != nil {
					t.Fatalf("drive %s to %s: %v", sb.ID, s, err)
				}
			}
			before, err := st.Get(ctx, sb.ID)
			if err != nil {
				t.Fatal(err)
			}
			if before.State != from {
				t.Fatalf("driven to %s, want %s", before.State, from)
			}
			at := clk.next()
			got, err := st.Transition(ctx, sb.ID, change(to, at, cid))
			if !isAllowed(from, to) {
				if !errors.Is(err, store.ErrInvalidTransition) {
					t.Errorf("%s -> %s: err = %v, want ErrInvalidTransition", from, to, err)
				}
				after, _ := st.Get(ctx, sb.ID)
				if after.State != from || !after.UpdatedAt.Equal(before.UpdatedAt) {
					t.Errorf("%s -> %s refused but row changed: %+v", from, to, after)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s -> %s: %v", from, to, err)
				continue
			}
			checkEntered(t, got, to, at)
		}
	}
}

// checkEntered checks the columns a transition into state to must set.
func checkEntered(t *testing.T, sb store.Sandbox, to store.State, at time.Time) {
	t.Helper()
	if sb.State != to {
		t.Errorf("state = %s, want %s", sb.State, to)
	}
	if sb.LastEventAt == nil || !sb.LastEventAt.Equal(at.Truncate(time.Microsecond)) {
		t.Errorf("-> %s: last_event_at = %v, want %v", to, sb.LastEventAt, at)
	}
	switch to {
	case store.Running:
		if sb.StartedAt == nil || sb.ExitCode != nil || sb.FinishedAt != nil {
			t.Errorf("-> running: started_at %v exit_code %v finished_at %v", sb.StartedAt, sb.ExitCode, sb.FinishedAt)
		}
	case store.Exited, store.Dead:
		if sb.ExitCode == nil || *sb.ExitCode != 3 || sb.FinishedAt == nil {
			t.Errorf("-> %s: exit_code %v finished_at %v", to, sb.ExitCode, sb.FinishedAt)
		}
	case store.Removed:
		if sb.RemovedAt == nil || sb.RemovalReason == "" {
			t.Errorf("-> removed: removed_at %v reason %q", sb.RemovedAt, sb.RemovalReason)
		}
	case store.Failed:
		if sb.Error != "boom" || sb.RemovalReason != store.ReasonFailed {
			t.Errorf("-> failed: error %q reason %q", sb.Error, sb.RemovalReason)
		}
	}
}

func TestOutOfOrderEvents(t *testing.T) {
	t.Parallel()
	st, _ := testenv.Store(t)
	ctx := context.Background()
	sb := insert(t, st, newSandbox("order"))
	cid := containerID(sb.ID)
	t0 := time.Now()
	docker := func(to store.State, at time.Time) store.Change {
		c := change(to, at, cid)
		c.Event.Source = store.SourceDocker
		return c
	}
	// Docker sent create, start, die; they arrive as start, die, create.
	if _, err := st.Transition(ctx, sb.ID, docker(store.Created, t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Transition(ctx, sb.ID, docker(store.Running, t0.Add(2*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Transition(ctx, sb.ID, docker(store.Exited, t0.Add(3*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	// A late start (older than the die) must not bring it back to running,
	// nor may a redelivered die at the same time apply twice.
	for _, late := range []store.Change{docker(store.Running, t0.Add(time.Millisecond)), docker(store.Exited, t0.Add(3*time.Millisecond))} {
		got, err := st.Transition(ctx, sb.ID, late)
		if !errors.Is(err, store.ErrStale) {
			t.Errorf("late %s: err = %v, want ErrStale", late.To, err)
		}
		if got.State != store.Exited {
			t.Errorf("late %s moved row to %s", late.To, got.State)
		}
	}
	row, _ := st.Get(ctx, sb.ID)
	if row.State != store.Exited || !row.LastEventAt.Equal(t0.Add(3*time.Millisecond).Truncate(time.Microsecond)) {
		t.Errorf("row = %s last_event_at %v", row.State, row.LastEventAt)
	}
	// The stale events are still part of the history.
	evs, err := st.ListEvents(ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range evs {
		actions = append(actions, e.Action)
	}
	want := []string{"intent", "created", "running", "running", "exited", "exited"}
	if !slices.Equal(actions, want) {
		t.Errorf("history = %v, want %v", actions, want)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	st, _ := testenv.Store(t)
	ctx := context.Background()
	a := newSandbox("idem")
	a.IdempotencyKey = "job-1"
	first := insert(t, st, a)

	b := newSandbox("idem")
	b.IdempotencyKey = "job-1"
	got, existing, err := st.InsertIntent(ctx, b, store.Quota{})
	if err != nil || !existing || got.ID != first.ID {
		t.Fatalf("second insert: id %s existing %v err %v, want %s", got.ID, existing, err, first.ID)
	}
	// Another project may use the same key.
	c := newSandbox("idem-other")
	c.IdempotencyKey = "job-1"
	insert(t, st, c)

	// Racing retries, also from two hosts (which do not share the create
	// lock, so only the unique index stands between them), make one row.
	var wg sync.WaitGroup
	ids := make(chan string, 20)
	for i := range 20 {
		wg.Go(func() {
			sb := newSandbox("idem")
			sb.IdempotencyKey = "job-2"
			sb.HostID = fmt.Sprintf("host-%d", i%2)
			got, _, err := st.InsertIntent(ctx, sb, store.Quota{})
			if err != nil {
				t.Errorf("racing insert: %v", err)
				return
			}
			ids <- got.ID
		})
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	if len(seen) != 1 {
		t.Errorf("racing retries made %d sandboxes, want 1", len(seen))
	}

	// A failed attempt does not hold its key: the retry creates anew.
	if _, err := st.Transition(ctx, first.ID, change(store.Failed, time.Now(), "")); err != nil {
		t.Fatal(err)
	}
	got, existing, err = st.InsertIntent(ctx, b, store.Quota{})
	if err != nil || existing || got.ID == first.ID {
		t.Errorf("retry after failure: id %s existing %v err %v", got.ID, existing, err)
	}
}

func TestQuota(t *testing.T) {
	t.Parallel()
	st, _ := testenv.Store(t)
	ctx := context.Background()
	q := store.Quota{PerProject: 3, PerHost: 5}
	var wg sync.WaitGroup
	var mu sync.Mutex
	made, refused := 0, 0
	for range 12 {
		wg.Go(func() {
			_, _, err := st.InsertIntent(ctx, newSandbox("quota-a"), q)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				made++
			case errors.Is(err, store.ErrQuota):
				refused++
			default:
				t.Errorf("insert: %v", err)
			}
		})
	}
	wg.Wait()
	if made != 3 || refused != 9 {
		t.Fatalf("per project: made %d refused %d, want 3 and 9", made, refused)
	}
	insert(t, st, newSandbox("quota-b"))
	insert(t, st, newSandbox("quota-b"))
	_, _, err := st.InsertIntent(ctx, newSandbox("quota-c"), q)
	var qe *store.QuotaError
	if !errors.As(err, &qe) || qe.Scope != "host" || qe.Limit != 5 {
		t.Fatalf("per host: err = %v, want host quota of 5", err)
	}
}

func TestListExtendTouch(t *testing.T) {
	t.Parallel()
	st, _ := testenv.Store(t)
	ctx := context.Background()
	a := insert(t, st, newSandbox("list-a"))
	b := insert(t, st, newSandbox("list-b"))
	c := insert(t, st, newSandbox("list-a"))
	if _, err := st.Transition(ctx, c.ID, change(store.Failed, time.Now(), "")); err != nil {
		t.Fatal(err)
	}
	ids := func(f store.Filter) []string {
		t.Helper()
		sbs, err := st.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, sb := range sbs {
			out = append(out, sb.ID)
		}
		return out
	}
	for name, tc := range map[string]struct {
		f    store.Filter
		want []string
	}{
		"live":       {store.Filter{}, []string{b.ID, a.ID}},
		"all":        {store.Filter{All: true}, []string{c.ID, b.ID, a.ID}},
		"project":    {store.Filter{ProjectID: "list-a", All: true}, []string{c.ID, a.ID}},
		"state":      {store.Filter{States: []store.State{store.Failed}, All: true}, []string{c.ID}},
		"limit":      {store.Filter{Limit: 1}, []string{b.ID}},
		"other host": {store.Filter{HostID: "elsewhere"}, nil},
	} {
		if got := ids(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", name, got, tc.want)
		}
	}

	until := time.Now().Add(2 * time.Hour).Truncate(time.Microsecond)
	got, err := st.Extend(ctx, a.ID, until)
	if err != nil || !got.ExpiresAt.Equal(until) {
		t.Errorf("extend: %v %v", got.ExpiresAt, err)
	}
	if _, err := st.Extend(ctx, c.ID, until); !errors.Is(err, store.ErrConflict) {
		t.Errorf("extend failed sandbox: err = %v, want ErrConflict", err)
	}
	if _, err := st.Extend(ctx, uuid.NewString(), until); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("extend unknown sandbox: err = %v, want ErrNotFound", err)
	}
	if _, err := st.Get(ctx, uuid.NewString()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get unknown sandbox: err = %v, want ErrNotFound", err)
	}

	later := time.Now().Add(time.Minute).Truncate(time.Microsecond)
	if _, err := st.Touch(ctx, a.ID, later); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Touch(ctx, a.ID, later.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Get(ctx, a.ID); !got.LastActivityAt.Equal(later) {
		t.Errorf("last_activity_at = %v, want %v (never backwards)", got.LastActivityAt, later)
	}
}

func TestRetention(t *testing.T) {
	t.Parallel()
	st, _ := testenv.Store(t)
	ctx := context.Background()
	var ended []store.Sandbox
	for range 3 {
		sb := insert(t, st, newSandbox("retention"))
		if _, err := st.Transition(ctx, sb.ID, change(store.Failed, time.Now(), "")); err != nil {
			t.Fatal(err)
		}
		ended = append(ended, sb)
	}
	live := insert(t, st, newSandbox("retention"))
	other := newSandbox("retention")
	other.HostID = "other-host"
	other = insert(t, st, other)
	st.Transition(ctx, other.ID, change(store.Failed, time.Now(), ""))

	if n, err := st.DeleteEnded(ctx, host, time.Now().Add(-time.Hour), 10); err != nil || n != 0 {
		t.Fatalf("DeleteEnded before their time = %d, %v; want 0", n, err)
	}
	n, err := st.DeleteEnded(ctx, host, time.Now().Add(time.Second), 2)
	if err != nil || n != 2 {
		t.Fatalf("DeleteEnded batch 1 = %d, %v; want 2", n, err)
	}
	n, err = st.DeleteEnded(ctx, host, time.Now().Add(time.Second), 2)
	if err != nil || n != 1 {
		t.Fatalf("DeleteEnded batch 2 = %d, %v; want 1", n, err)
	}
	for _, sb := range ended {
		if _, err := st.Get(ctx, sb.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s still there after retention: %v", sb.ID, err)
		}
		if evs, err := st.ListEvents(ctx, sb.ID); err != nil || len(evs) != 0 {
			t.Errorf("history of %s after retention: %d events, %v", sb.ID, len(evs), err)
		}
	}
	for _, sb := range []store.Sandbox{live, other} {
		if _, err := st.Get(ctx, sb.ID); err != nil {
			t.Errorf("retention took %s, a live row or another host's: %v", sb.ID, err)
		}
	}
}

func TestLockHost(t *testing.T) {
	t.Parallel()
	st, _ := testenv.Store(t)
	ctx := context.Background()
	unlock, ok, err := st.LockHost(ctx, host)
	if err != nil || !ok {
		t.Fatalf("first lock: %v %v", ok, err)
	}
	if _, ok, err := st.LockHost(ctx, host); err != nil || ok {
		t.Errorf("second lock of the same host: ok=%v err=%v, want refused", ok, err)
	}
	other, ok, err := st.LockHost(ctx, "other-host")
	if err != nil || !ok {
		t.Errorf("lock of another host: %v %v", ok, err)
	} else {
		other()
	}
	unlock()
	again, ok, err := st.LockHost(ctx, host)
	if err != nil || !ok {
		t.Fatalf("lock after unlock: %v %v", ok, err)
	}
	again()
}

func TestInsertOrphan(t *testing.T) {
	t.Parallel()
	st, _ := testenv.Store(t)
	ctx := context.Background()
	taken := insert(t, st, newSandbox("orphans"))
	orphan := newSandbox("orphans")
	orphan.ContainerID = containerID(orphan.ID)
	got, err := st.InsertOrphan(ctx, orphan, uuid.NewString)
	if err != nil || got.ID != orphan.ID || got.State != store.Removing || got.RemovalReason != store.ReasonOrphaned {
		t.Fatalf("orphan row = %+v, %v", got, err)
	}
	// Recording it again returns the same row.
	again, err := st.InsertOrphan(ctx, orphan, uuid.NewString)
	if err != nil || again.ID != got.ID {
		t.Errorf("second record = %s, %v; want %s", again.ID, err, got.ID)
	}
	// A label naming a sandbox id that another row holds gets a fresh id.
	clash := newSandbox("orphans")
	clash.ID = taken.ID
	clash.ContainerID = containerID(uuid.NewString())
	got, err = st.InsertOrphan(ctx, clash, uuid.NewString)
	if err != nil || got.ID == taken.ID || got.ContainerID != clash.ContainerID {
		t.Errorf("orphan with a taken id = %+v, %v", got, err)
	}
}

// TestApplyEventsOutOfOrder applies a batch of engine events that arrived
// out of order: the row ends in the state of the newest, and every event is
// in the history.
func TestApplyEventsOutOfOrder(t *testing.T) {
	t.Parallel()
	st, _ := testenv.Store(t)
	ctx := context.Background()
	sb := insert(t, st, newSandbox("batch"))
	cid := containerID(sb.ID)
	t0 := time.Now()
	ev := func(to store.State, action string, ms int) store.EventChange {
		c := store.Change{To: to, At: t0.Add(time.Duration(ms) * time.Millisecond), ContainerID: cid,
			Event: store.Event{Action: action, Source: store.SourceDocker}}
		if to == store.Exited {
			code := 137
			c.ExitCode = &code
		}
		return store.EventChange{SandboxID: sb.ID, Change: c}
	}
	oom := ev("", "oom", 3)
	oom.OOMKilled = true
	destroy := ev(store.Removed, "destroy", 5)
	destroy.Reason = store.ReasonExternal
	n, err := st.ApplyEvents(ctx, []store.EventChange{
		ev(store.Created, "create", 1), ev(store.Exited, "die", 4), oom, ev(store.Running, "start", 2),
		destroy, ev(store.Paused, "pause", 7), ev(store.Running, "start", 8),
		{SandboxID: uuid.NewString(), Change: ev(store.Running, "start", 6).Change},
	})
	if err != nil {
		t.Fatal(err)
	}
	// create, die, oom and the first destroy apply; the late start is
	// stale; a pause and a start after removal are refused; the last names
	// no row.
	if want := (store.Applied{Applied: 4, Stale: 1, Refused: 2, Unknown: 1}); n != want {
		t.Errorf("outcome %+v, want %+v", n, want)
	}
	got, _ := st.Get(ctx, sb.ID)
	if got.State != store.Removed || got.RemovalReason != store.ReasonExternal || !got.OOMKilled || got.ExitCode == nil || *got.ExitCode != 137 {
		t.Errorf("row = %s/%s oom %v exit %v", got.State, got.RemovalReason, got.OOMKilled, got.ExitCode)
	}
	evs, _ := st.ListEvents(ctx, sb.ID)
	if len(evs) != 8 { // intent plus the seven events of this sandbox
		t.Errorf("history holds %d events, want 8", len(evs))
	}
}

func TestIsUnavailable(t *testing.T) {
	t.Parallel()
	for err, want := range map[error]bool{
		nil: false,
		fmt.Errorf("commit: %w", pgconn.ErrConnClosed): true,
		fmt.Errorf("read: %w", io.ErrUnexpectedEOF):    true,
		&pgconn.PgError{Code: "57P01"}:                 true, // admin shutdown
		&pgconn.PgError{Code: "08006"}:                 true, // connection failure
		&pgconn.PgError{Code: "23505"}:                 false,
		errors.New("syntax error"):                     false,
	} {
		if got := store.IsUnavailable(err); got != want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", err, got, want)
		}
	}
}

// TestApplyObservedEvents: events that change no row (kill, stop) join the
// history of the row their label names only when that row holds the same
// container; otherwise they are kept without a row.
func TestApplyObservedEvents(t *testing.T) {
	t.Parallel()
	st, _ := testenv.Store(t)
	ctx := context.Background()
	sb := insert(t, st, newSandbox("observed"))
	cid := containerID(sb.ID)
	if _, err := st.Transition(ctx, sb.ID, store.Change{To: store.Running, ContainerID: cid,
		Event: store.Event{Action: "start", Source: store.SourceAPI}}); err != nil {
		t.Fatal(err)
	}
	kill := func(sandboxID, container string) store.EventChange {
		return store.EventChange{SandboxID: sandboxID, Change: store.Change{At: time.Now(), ContainerID: container,
			Event: store.Event{Action: "kill", Source: store.SourceDocker, Attributes: map[string]string{"signal": "15"}}}}
	}
	n, err := st.ApplyEvents(ctx, []store.EventChange{
		kill(sb.ID, cid), // its own container: joins the row
		kill(sb.ID, ""),  // no container named: joins the row, with the row's container
		kill(sb.ID, containerID(uuid.NewString())), // another container: not this row's
		kill(uuid.NewString(), cid),                // no such row
		kill("", cid),                              // no label
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.Applied{Applied: 2, Unknown: 3}); n != want {
		t.Errorf("outcome %+v, want %+v", n, want)
	}
	evs, err := st.ListEvents(ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var kills int
	for _, e := range evs {
		if e.Action == "kill" {
			kills++
			if e.ContainerID != cid || e.Attributes["signal"] != "15" {
				t.Errorf("kill event = %+v, want container %s and signal 15", e, cid)
			}
		}
	}
	if kills != 2 {
		t.Errorf("history holds %d kill events, want 2", kills)
	}
	if got, _ := st.Get(ctx, sb.ID); got.State != store.Running {
		t.Errorf("row is %s after events that change no row, want running", got.State)
	}
}

// TestApplyObservedDuringDelete: an event that changes no row, arriving
// while retention deletes that row, waits for the delete and is kept
// without a row; it does not fail its batch on the foreign key.
func TestApplyObservedDuringDelete(t *testing.T) {
	t.Parallel()
	st, url := testenv.Store(t)
	ctx := context.Background()
	sb := insert(t, st, newSandbox("deleting"))
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	watch, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM docker_containers WHERE id = $1`, sb.ID); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		n   store.Applied
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		n, err := st.ApplyEvents(ctx, []store.EventChange{{SandboxID: sb.ID, Change: store.Change{At: time.Now(),
			Event: store.Event{Action: "kill", Source: store.SourceDocker}}}})
		done <- outcome{n, err}
	}()
	// The batch waits on the row lock until the delete commits.
	testenv.Eventually(t, 10*time.Second, "the event waits for the delete", func() bool {
		var waiting int
		err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		return err == nil && waiting > 0
	})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil || got.n != (store.Applied{Unknown: 1}) {
		t.Errorf("ApplyEvents during a delete = %+v, %v; want the event kept without a row", got.n, got.err)
	}
}

// TestForgetKey: once a sandbox's key is freed, a create with that key makes
// a new sandbox instead of finding the old one.
func TestForgetKey(t *testing.T) {
	t.Parallel()
	st, _ := testenv.Store(t)
	ctx := context.Background()
	a := newSandbox("forget")
	a.IdempotencyKey = "job-1"
	first := insert(t, st, a)
	if err := st.ForgetKey(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	b := newSandbox("forget")
	b.IdempotencyKey = "job-1"
	got, existing, err := st.InsertIntent(ctx, b, store.Quota{})
	if err != nil || existing || got.ID != b.ID {
		t.Errorf("insert after ForgetKey: id %s existing %v err %v, want a new sandbox %s", got.ID, existing, err, b.ID)
	}
	if err := st.ForgetKey(ctx, uuid.NewString()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ForgetKey of an unknown id = %v, want ErrNotFound", err)
	}
}
