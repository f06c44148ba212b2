package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// result is one comparison: sandboxd against the raw engine (or a single
// figure against a target, when there is no other side).
type result struct {
	Name     string  `json:"name"`
	Unit     string  `json:"unit"`
	P50      float64 `json:"p50"`
	P95      float64 `json:"p95"`
	P99      float64 `json:"p99,omitempty"`
	BaseName string  `json:"baseline,omitempty"`
	BaseP50  float64 `json:"baseline_p50,omitempty"`
	BaseP95  float64 `json:"baseline_p95,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"` // P50 / BaseP50
	Samples  int     `json:"samples"`
	Target   string  `json:"target"`
	Met      bool    `json:"met"`
	Note     string  `json:"note,omitempty"`
}

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(q*float64(len(s)-1) + 0.5)
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// compare builds a result from alternating samples of both sides.
func compare(name, base string, a, b []float64, maxRatio float64) result {
	r := result{Name: name, Unit: "ms", P50: quantile(a, 0.5), P95: quantile(a, 0.95), BaseName: base,
		BaseP50: quantile(b, 0.5), BaseP95: quantile(b, 0.95), Samples: len(a)}
	if r.BaseP50 > 0 {
		r.Ratio = r.P50 / r.BaseP50
	}
	r.Target = fmt.Sprintf("ratio <= %.2f at p50", maxRatio)
	r.Met = r.Ratio <= maxRatio
	return r
}

func printTable(w io.Writer, rs []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measurement\tsandboxd p50\tp95\tbaseline\tp50\tp95\tratio\tn\ttarget\tmet\t")
	for _, r := range rs {
		ratio, base := "-", "-"
		if r.BaseName != "" {
			ratio = fmt.Sprintf("%.2f", r.Ratio)
			base = r.BaseName
		}
		met := "yes"
		if !r.Met {
			met = "NO"
		}
		fmt.Fprintf(tw, "%s\t%.1f %s\t%.1f\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t\n", r.Name, r.P50, r.Unit, r.P95, base,
			num(r.BaseP50, r.BaseName), num(r.BaseP95, r.BaseName), ratio, r.Samples, r.Target, met)
	}
	tw.Flush()
}

func num(v float64, name string) string {
	if name == "" {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}
