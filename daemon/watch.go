package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/sandboxd/sandboxd/store"
)

// Event stream tuning.
const (
	eventBuffer     = 8192 // events held while the database is away
	eventBatch      = 256  // most events written in one transaction
	reconnectMin    = 100 * time.Millisecond
	reconnectMax    = 5 * time.Second // cap of the reconnect backoff
	writeRetryMax   = 2 * time.Second
	eventStreamName = "docker events"
)

// watchedActions are the container events that say something about a
// sandbox's life. Exec, attach, archive and resize events are left out:
// sandboxd causes those itself, many per request, and tracks activity in
// last_activity_at instead.
var watchedActions = []string{"create", "start", "restart", "stop", "pause", "unpause",
	"kill", "die", "oom", "destroy", "health_status", "rename", "update"}

// watcher follows the engine's event stream for this host's sandboxes and
// writes what it sees to the table. Events are hints, not the truth: after
// every (re)connect, when events were dropped, and every resync interval,
// it reconciles the table with what the engine holds.
type watcher struct {
	m     *manager
	log   *slog.Logger
	queue chan events.Message

	// overflow is set when the queue was full and an event was dropped;
	// the writer then forces a reconcile once the database takes writes.
	overflowMu sync.Mutex
	overflow   bool

	reconcileMu sync.Mutex    // one reconcile at a time
	synced      chan struct{} // closed after the first reconcile succeeded
	syncOnce    sync.Once

	statusMu  sync.Mutex
	up        bool
	downSince time.Time
	lastErr   string
	lastSeen  time.Time // Docker time of the newest event read

	connectedOnce bool         // a later connect is a reconnect
	beat          atomic.Int64 // unix nanos of the writer loop's last turn, for the watchdog
}

func newWatcher(m *manager, since time.Time) *watcher {
	return &watcher{m: m, log: m.log.With("component", "watcher"), queue: make(chan events.Message, eventBuffer), synced: make(chan struct{}),
		lastSeen: since, downSince: time.Now(), lastErr: "not connected yet"}
}

// Status says whether the stream is up and, if not, since when and why.
func (w *watcher) Status() (up bool, detail string) {
	w.statusMu.Lock()
	defer w.statusMu.Unlock()
	if w.up {
		return true, "ok"
	}
	return false, fmt.Sprintf("down since %s: %s", w.downSince.UTC().Format(time.RFC3339), w.lastErr)
}

// InSync reports whether the table follows the engine right now: the
// stream is up and no reconcile is owed. The reaper's orphan and vanished
// rules trust the table only then.
func (w *watcher) InSync() bool {
	w.statusMu.Lock()
	up := w.up
	w.statusMu.Unlock()
	w.overflowMu.Lock()
	owed := w.overflow
	w.overflowMu.Unlock()
	return up && !owed
}

func (w *watcher) setUp() {
	w.statusMu.Lock()
	defer w.statusMu.Unlock()
	if !w.up {
		w.log.Info("event stream up", "down_for", time.Since(w.downSince).Round(time.Millisecond))
		if w.connectedOnce {
			w.m.metrics.reconnects.Inc()
		}
	}
	w.connectedOnce = true
	w.up = true
	w.m.metrics.streamUp.Set(1)
}

func (w *watcher) setDown(err error) {
	w.statusMu.Lock()
	defer w.statusMu.Unlock()
	if w.up {
		// Logged once per outage, not once per reconnect attempt.
		w.log.Warn("event stream down", "err", err)
		w.downSince = time.Now()
	}
	w.up = false
	w.lastErr = err.Error()
	w.m.metrics.streamUp.Set(0)
}

// Run reads the stream and writes the table until ctx ends. It reconnects
// forever, with capped exponential backoff.
func (w *watcher) Run(ctx context.Context, resync time.Duration) {
	var wg sync.WaitGroup
	wg.Go(func() { w.write(ctx) })
	wg.Go(func() { w.resyncLoop(ctx, resync) })
	backoff := reconnectMin
	for ctx.Err() == nil {
		wasUp, err := w.stream(ctx)
		if ctx.Err() != nil {
			break
		}
		w.setDown(err)
		if wasUp {
			backoff = reconnectMin // a new outage starts the backoff anew
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, reconnectMax)
	}
	wg.Wait()
}

// stream subscribes, reconciles, then queues events until the stream ends.
// wasUp says whether the subscription had succeeded.
func (w *watcher) stream(ctx context.Context) (wasUp bool, _ error) {
	w.statusMu.Lock()
	since := w.lastSeen
	w.statusMu.Unlock()
	args := filters.NewArgs(
		filters.Arg("type", "container"),
		filters.Arg("label", LabelManaged+"=true"),
		filters.Arg("label", LabelHost+"="+w.m.cfg.HostID))
	for _, a := range watchedActions {
		args.Add("event", a)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := events.ListOptions{Filters: args}
	if !since.IsZero() {
		opts.Since = strconv.FormatInt(since.Unix(), 10) + "." + fmt.Sprintf("%09d", since.Nanosecond())
	}
	msgs, errs := w.m.docker.Events(ctx, opts)
	// Events returns once the engine answered: an error now means no stream.
	select {
	case err := <-errs:
		return false, fmt.Errorf("subscribe to %s: %w", eventStreamName, err)
	default:
	}
	w.setUp()
	// Anything missed while disconnected (the engine keeps only a short
	// buffer, and none across its restarts) is caught by a reconcile.
	if err := w.reconcile(ctx); err != nil {
		w.log.Warn("reconcile after connect", "err", err)
		w.setOverflow() // retried by the writer once the database answers
	}
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case err := <-errs:
			return true, fmt.Errorf("%s ended: %w", eventStreamName, err)
		case msg := <-msgs:
			if msg.Actor.Attributes[LabelHost] != w.m.cfg.HostID || msg.Actor.Attributes[LabelManaged] != "true" {
				continue // not ours, whatever the engine's filter let through
			}
			w.statusMu.Lock()
			w.lastSeen = time.Unix(0, msg.TimeNano)
			w.statusMu.Unlock()
			w.m.metrics.events.WithLabelValues(actionLabel(string(msg.Action))).Inc()
			select {
			case w.queue <- msg:
			default:
				w.setOverflow()
			}
		}
	}
}

func (w *watcher) setOverflow() {
	w.overflowMu.Lock()
	w.overflow = true
	w.overflowMu.Unlock()
}

func (w *watcher) takeOverflow() bool {
	w.overflowMu.Lock()
	defer w.overflowMu.Unlock()
	o := w.overflow
	w.overflow = false
	return o
}

// write drains the queue in batches. A batch that cannot be written (the
// database is away) is retried until it can; meanwhile the reader keeps
// queueing, up to eventBuffer.
func (w *watcher) write(ctx context.Context) {
	batch := make([]store.EventChange, 0, eventBatch)
	failing := false
	for {
		w.beat.Store(time.Now().UnixNano())
		batch = batch[:0]
		select {
		case <-ctx.Done():
			w.flush()
			return
		case msg := <-w.queue:
			batch = append(batch, toChange(msg))
		case <-time.After(time.Second):
			// Idle: a chance to run a reconcile owed after an overflow.
		}
	fill:
		for len(batch) < eventBatch {
			select {
			case msg := <-w.queue:
				batch = append(batch, toChange(msg))
			default:
				break fill
			}
		}
		for backoff := reconnectMin; ; backoff = min(backoff*2, writeRetryMax) {
			w.beat.Store(time.Now().UnixNano())
			var err error
			if len(batch) > 0 {
				// Bounded, so that a wedged database cannot stop this loop
				// (and with it the watchdog's ping).
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err = w.m.st.ApplyEvents(wctx, batch)
				cancel()
				if err == nil {
					now := time.Now()
					for _, ev := range batch {
						w.m.metrics.eventLag.Observe(now.Sub(ev.At).Seconds())
					}
				}
			}
			if err == nil && w.takeOverflow() {
				// Bounded like the writes, and never waiting for another
				// reconcile to finish: this loop's turns feed the watchdog.
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err = w.tryReconcile(rctx)
				cancel()
				if err != nil {
					w.setOverflow()
					err = fmt.Errorf("reconcile owed after dropped events: %w", err)
				}
			}
			if err == nil {
				if failing {
					w.log.Info("event writes resumed")
					failing = false
				}
				break
			}
			if ctx.Err() != nil {
				return
			}
			if !failing {
				w.log.Error("write events", "err", err, "queued", len(w.queue))
				failing = true
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
	}
}

// flush writes what is still queued when the daemon stops, so that a clean
// stop loses no event (a crash loses them, and the next start's reconcile
// makes up for it).
func (w *watcher) flush() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var batch []store.EventChange
	for {
		select {
		case msg := <-w.queue:
			batch = append(batch, toChange(msg))
			continue
		default:
		}
		break
	}
	if len(batch) == 0 {
		return
	}
	if _, err := w.m.st.ApplyEvents(ctx, batch); err != nil {
		w.log.Warn("write queued events at stop; the next start reconciles", "events", len(batch), "err", err)
	}
}

func (w *watcher) resyncLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := w.reconcile(ctx); err != nil {
				w.log.Warn("periodic reconcile", "err", err)
				w.setOverflow()
			}
		}
	}
}

// actionLabel keeps the metric's action label to a closed set.
func actionLabel(action string) string {
	action, _, _ = strings.Cut(action, ":")
	if slices.Contains(watchedActions, action) {
		return action
	}
	return "other"
}

// toChange maps an engine event to a change of the sandbox's row.
func toChange(msg events.Message) store.EventChange {
	at := time.Unix(0, msg.TimeNano)
	attrs := map[string]string{}
	for k, v := range msg.Actor.Attributes {
		// Labels are on the row already; keep the event's own facts.
		if !strings.HasPrefix(k, "io.sandboxd.") {
			attrs[k] = v
		}
	}
	c := store.Change{At: at, ContainerID: msg.Actor.ID,
		Event: store.Event{ContainerID: msg.Actor.ID, Action: string(msg.Action), Source: store.SourceDocker,
			OccurredAt: at, Attributes: attrs}}
	switch action, _, _ := strings.Cut(string(msg.Action), ":"); action {
	case "create":
		c.To = store.Created
	case "start", "unpause", "restart":
		c.To = store.Running
	case "pause":
		c.To = store.Paused
	case "die":
		c.To = store.Exited
		if code, err := strconv.Atoi(msg.Actor.Attributes["exitCode"]); err == nil {
			c.ExitCode = &code
		}
	case "oom":
		c.OOMKilled = true
	case "destroy":
		c.To, c.Reason = store.Removed, store.ReasonExternal
	}
	id := msg.Actor.Attributes[LabelSandboxID]
	if validID(id) != nil {
		id = "" // a broken or forged label names no row; the event is kept without one
	}
	return store.EventChange{SandboxID: id, Change: c}
}
