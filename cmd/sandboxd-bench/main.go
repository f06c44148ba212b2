// Command sandboxd-bench measures sandboxd side by side with the raw Docker
// API and the docker CLI on this machine, alternating the two sides of each
// comparison (A B A B ...) so that a noisy host weighs on both alike. It
// prints a table of p50, p95 and ratios, writes the same as JSON, and exits
// non-zero when a target is missed. `make bench` runs it against the daemon
// binary just built; `make bench QUICK=1` is the short form.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type config struct {
	daemonBin   string
	out         string
	samples     int           // per side, for the latency comparisons
	reapN       int           // sandboxes for reap throughput
	reapRounds  int           // rounds of each side of the reap comparison
	scaleN      int           // live sandboxes for the listing, footprint and start-up figures
	burst       int           // containers in the event-lag burst
	removedRows int           // removed rows in the table for the list figure
	idleWindow  time.Duration // CPU measured over this idle window

	only         string // "load": run only the load; "": the benchmarks
	loadClients  int
	loadDuration time.Duration
}

func main() {
	var c config
	quick := flag.Bool("quick", false, "small sizes: about two minutes")
	flag.StringVar(&c.daemonBin, "daemon", "bin/sandboxd", "sandboxd binary to start")
	flag.StringVar(&c.out, "out", ".dev/bench.json", "write the results here as JSON")
	flag.IntVar(&c.samples, "samples", 30, "samples per side for latency comparisons")
	flag.IntVar(&c.reapN, "reap-n", 200, "expired sandboxes one reaper pass removes")
	flag.IntVar(&c.reapRounds, "reap-rounds", 5, "rounds of each side of the reap comparison")
	flag.IntVar(&c.scaleN, "scale-n", 500, "live sandboxes for the listing, footprint and start-up figures")
	flag.IntVar(&c.burst, "burst", 100, "containers started and killed in the event-lag burst")
	flag.IntVar(&c.removedRows, "removed-rows", 100000, "removed rows in the table for the list figure")
	flag.DurationVar(&c.idleWindow, "idle-window", time.Minute, "window over which idle CPU is measured")
	flag.StringVar(&c.only, "only", "", `"load" runs only the load test`)
	flag.IntVar(&c.loadClients, "load-clients", 64, "concurrent clients of the load test")
	flag.DurationVar(&c.loadDuration, "load-duration", 2*time.Minute, "length of the load test")
	flag.Parse()
	if *quick {
		c.samples, c.reapN, c.scaleN, c.burst, c.removedRows, c.idleWindow = 25, 40, 40, 40, 20000, 10*time.Second
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	results, err := run(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd-bench:", err)
		os.Exit(1)
	}
	printTable(os.Stdout, results)
	b, _ := json.MarshalIndent(map[string]any{"date": time.Now().UTC().Format(time.RFC3339), "quick": *quick,
		"machine": machine(ctx), "results": results}, "", "  ")
	if err := os.WriteFile(c.out, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd-bench:", err)
		os.Exit(1)
	}
	fmt.Println("results written to", c.out)
	for _, r := range results {
		if !r.Met {
			fmt.Fprintf(os.Stderr, "sandboxd-bench: target missed: %s (%s)\n", r.Name, r.Target)
			os.Exit(2)
		}
	}
}
