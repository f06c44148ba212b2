package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/client"
	"github.com/sandboxd/sandboxd/store"
)

// loadQuota is the per-project quota the load runs against: far fewer than
// the clients, so that they contend at the boundary.
const loadQuota = 16

// load runs c.loadClients clients creating, exec'ing and releasing
// sandboxes of one project for c.loadDuration. It checks that nothing
// fails but with quota_exceeded, that the quota is never exceeded, and that
// at the end the engine's managed containers and the table's live rows are
// the same set.
func (b *bench) load(ctx context.Context) ([]result, error) {
	b.stopDaemon()
	if err := b.startDaemon(ctx, "--max-per-project", fmt.Sprint(loadQuota)); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.loadDuration)
	defer cancel()

	var over atomic.Int64 // highest live count seen
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for ctx.Err() == nil {
			counts, err := b.st.CountLive(context.Background(), b.host)
			if err == nil {
				n := 0
				for _, c := range counts {
					n += c
				}
				for cur := over.Load(); int64(n) > cur && !over.CompareAndSwap(cur, int64(n)); cur = over.Load() {
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()

	var mu sync.Mutex
	var trips []float64
	var ok, quota, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range b.cfg.loadClients {
		wg.Go(func() {
			for ctx.Err() == nil {
				t := time.Now()
				sb, _, err := b.c.Create(ctx, api.CreateRequest{ProjectID: "load", Image: image})
				if client.IsQuotaExceeded(err) {
					quota.Add(1)
					// A polite client backs off, with jitter, before it retries.
					time.Sleep(100*time.Millisecond + time.Duration(rand.Int64N(int64(100*time.Millisecond))))
					continue
				}
				if err == nil {
					_, err = b.c.Exec(context.WithoutCancel(ctx), sb.ID, api.ExecRequest{Cmd: []string{"echo", "hi"}})
				}
				if sb.ID != "" {
					if _, derr := b.c.Delete(context.WithoutCancel(ctx), sb.ID); err == nil {
						err = derr
					}
				}
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
					continue
				}
				ok.Add(1)
				mu.Lock()
				trips = append(trips, ms(time.Since(t)))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	<-watchDone

	diff, err := b.engineVersusTable(context.Background())
	if err != nil {
		return nil, err
	}
	met := failed.Load() == 0 && over.Load() <= loadQuota && diff == ""
	note := fmt.Sprintf("%d round trips, %d quota_exceeded, %d other errors, most live %d (quota %d)",
		ok.Load(), quota.Load(), failed.Load(), over.Load(), loadQuota)
	if e, _ := firstErr.Load().(error); e != nil {
		note += "; first error: " + e.Error()
	}
	if diff != "" {
		note += "; engine and table differ: " + diff
	}
	fmt.Println("load:", note)
	return []result{{Name: fmt.Sprintf("load: %d clients for %s, round trip", b.cfg.loadClients, b.cfg.loadDuration), Unit: "ms",
		P50: quantile(trips, 0.5), P95: quantile(trips, 0.95), Samples: len(trips),
		Target: "only quota_exceeded; quota kept; engine = table", Met: met, Note: note}}, nil
}

// engineVersusTable compares the engine's managed containers of the host
// with the table's live rows ("" when they are the same set).
func (b *bench) engineVersusTable(ctx context.Context) (string, error) {
	list, err := b.docker.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "io.sandboxd.host="+b.host))})
	if err != nil {
		return "", err
	}
	rows, err := b.st.List(ctx, store.Filter{HostID: b.host})
	if err != nil {
		return "", err
	}
	engine := map[string]bool{}
	for _, c := range list {
		engine[c.ID] = true
	}
	var diff []string
	for _, r := range rows {
		if !engine[r.ContainerID] {
			diff = append(diff, "row "+r.ID+" without container")
		}
		delete(engine, r.ContainerID)
	}
	for id := range engine {
		diff = append(diff, "container "+id[:12]+" without row")
	}
	return fmt.Sprint(diff)[1 : len(fmt.Sprint(diff))-1], nil
}
