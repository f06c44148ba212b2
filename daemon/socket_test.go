package daemon_test

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/daemon"
)

// TestSocketTakeover: a live daemon's socket is never taken over; a stale
// socket file left by a dead one is replaced. The socket gets its mode.
func TestSocketTakeover(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *daemon.Config) { c.SocketMode = 0o660 })
	fi, err := os.Stat(e.cfg.Socket)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v, %v; want a socket with mode 0660", fi.Mode(), err)
	}

	second := e.cfg
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = daemon.Run(ctx, second, nil)
	if err == nil || !strings.Contains(err.Error(), "another sandboxd is already serving there") {
		t.Fatalf("second daemon on a live socket: %v", err)
	}
	if _, err := e.c.Health(ctx); err != nil {
		t.Errorf("first daemon after the attempt: %v", err)
	}

	// A socket file nobody listens on is stale.
	stale := e.cfg
	stale.Socket = e.cfg.Socket + ".stale"
	ln, err := net.Listen("unix", stale.Socket)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ctx2, cancel2 := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx2, stale, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("daemon over a stale socket: %v", err)
	}
	cancel2()
	if err := <-done; err != nil {
		t.Errorf("stop: %v", err)
	}
}
