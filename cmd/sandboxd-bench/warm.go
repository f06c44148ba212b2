package main

import (
	"context"
	"fmt"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// warmPool is the size of the pool behind the warm-claim figure.
const warmPool = 8

// warm: a create served from a warm pool while the pool refills, beside a
// cold create (the request gives its own command, which a pool never
// serves), alternating.
func (b *bench) warm(ctx context.Context) ([]result, error) {
	b.stopDaemon()
	if err := b.startDaemon(ctx, "--max-per-project", "2000", "--pool", fmt.Sprintf("%s=%d", image, warmPool)); err != nil {
		return nil, err
	}
	ready := func() bool {
		n, err := b.st.CountPooled(ctx, b.host)
		return err == nil && n[image] >= warmPool
	}
	if err := waitFor(ctx, 2*time.Minute, ready); err != nil {
		return nil, fmt.Errorf("pool did not fill: %w", err)
	}
	var claim, cold []float64
	misses := 0
	for range b.cfg.samples * 3 {
		t := time.Now()
		sb, _, err := b.c.Create(ctx, api.CreateRequest{ProjectID: "bench-warm", Image: image})
		if err != nil {
			return nil, err
		}
		d := ms(time.Since(t))
		if sb.AcquiredFrom == "pool" {
			claim = append(claim, d)
		} else {
			misses++ // the pool was empty: the create was cold
		}
		b.c.Delete(ctx, sb.ID)

		t = time.Now()
		sb, _, err = b.c.Create(ctx, api.CreateRequest{ProjectID: "bench-warm", Image: image, Cmd: []string{"sleep", "600"}})
		if err != nil {
			return nil, err
		}
		cold = append(cold, ms(time.Since(t)))
		b.c.Delete(ctx, sb.ID)
	}
	r := compare("warm claim (pool refilling)", "cold create", claim, cold, 1.0)
	p99 := quantile(claim, 0.99)
	r.P99 = p99
	r.Target = "p50 <= 10 ms, p99 <= 50 ms"
	r.Met = r.P50 <= 10 && p99 <= 50
	r.Note = fmt.Sprintf("p99 %.1f ms; %d of %d creates found the pool empty", p99, misses, misses+len(claim))
	fmt.Println("warm claim:", r.Note)
	return []result{r}, nil
}
