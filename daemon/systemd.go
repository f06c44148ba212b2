package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// statusEvery is how often the STATUS= line is refreshed.
const statusEvery = 10 * time.Second

// writerStuckAfter is the least time without a turn of the event writer
// loop that counts as stuck.
const writerStuckAfter = 3 * time.Second

// systemd speaks the notify protocol when NOTIFY_SOCKET is set (Type=notify):
// READY=1, STATUS= lines for systemctl status, WATCHDOG=1 and STOPPING=1.
// Without NOTIFY_SOCKET every call is a no-op.
type systemd struct {
	m      *manager
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startSystemd(m *manager, log *slog.Logger) *systemd {
	ctx, cancel := context.WithCancel(context.Background())
	s := &systemd{m: m, log: log, cancel: cancel}
	s.wg.Go(func() { s.statusLoop(ctx) })
	if every, err := sd.SdWatchdogEnabled(false); err == nil && every > 0 {
		s.wg.Go(func() { s.watchdog(ctx, every) })
	}
	return s
}

func (s *systemd) notify(state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		s.log.Warn("notify systemd", "state", state, "err", err)
	}
}

func (s *systemd) ready() { s.notify(sd.SdNotifyReady + "\n" + s.status()) }

func (s *systemd) stopping() { s.notify(sd.SdNotifyStopping + "\nSTATUS=stopping: draining requests") }

func (s *systemd) stop() {
	s.cancel()
	s.wg.Wait()
}

// watchdog sends WATCHDOG=1 at half the interval systemd asked for, but
// only while the daemon's own loops turn. It is deliberately not tied to
// dockerd's or PostgreSQL's health: restarting sandboxd would not bring
// either back, and would restart it in a loop for as long as they are away.
func (s *systemd) watchdog(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every / 2)
	defer t.Stop()
	stuck := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// The writer loop turns at least every second when idle and every
		// 12 s at worst while the database fails (bounded writes, capped
		// backoff): a beat older than that means the loop is stuck.
		if age := time.Since(time.Unix(0, s.m.events.beat.Load())); age > max(every/2, writerStuckAfter) {
			if !stuck {
				s.log.Error("event writer loop stuck; withholding the watchdog ping", "since", age.Round(time.Second))
				stuck = true
			}
			continue
		}
		stuck = false
		s.notify(sd.SdNotifyWatchdog)
	}
}

func (s *systemd) statusLoop(ctx context.Context) {
	t := time.NewTicker(statusEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.notify(s.status())
		}
	}
}

// status is the STATUS= line an operator sees in systemctl status.
func (s *systemd) status() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	live := "?"
	if counts, err := s.m.st.CountLive(ctx, s.m.cfg.HostID); err == nil {
		n := 0
		for _, c := range counts {
			n += c
		}
		live = fmt.Sprint(n)
	}
	_, events := s.m.events.Status()
	reap := "no pass yet"
	if at, err := s.m.reaper.LastPass(); !at.IsZero() {
		reap = fmt.Sprintf("%s ago", time.Since(at).Round(time.Second))
		if err != nil {
			reap += " (failed: " + err.Error() + ")"
		}
	}
	return fmt.Sprintf("STATUS=live sandboxes: %s; events: %s; last reap: %s", live, events, reap)
}
