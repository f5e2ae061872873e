package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// The targets README.md states.
const (
	targetColdRatio = 1.5  // berth up / bare runtime, medians
	targetRSSMiB    = 20.0 // berthd idle, with and without the stack
	targetStorage   = 1.05 // stored / unique layers
)

type machine struct {
	CPU            string `json:"cpu"`
	Cores          int    `json:"cores"`
	Kernel         string `json:"kernel"`
	Runtime        string `json:"runtime,omitempty"` // the stack part's only
	RuntimeVersion string `json:"runtime_version,omitempty"`
}

type coldStart struct {
	BerthMs        []float64 `json:"berth_ms"`
	DirectMs       []float64 `json:"direct_ms"`
	CLIMs          []float64 `json:"cli_ms"` // `berth ps`, for information
	CLIMedianMs    float64   `json:"cli_median_ms"`
	BerthMedianMs  float64   `json:"berth_median_ms"`
	DirectMedianMs float64   `json:"direct_median_ms"`
	Ratio          float64   `json:"ratio"`
	Target         float64   `json:"target"`
	Pass           bool      `json:"pass"`
}

type memory struct {
	IdleKiB  int64 `json:"idle_kib"`  // berthd, no stack
	UpKiB    int64 `json:"up_kib"`    // berthd as `berth up` returns, before it trims
	StackKiB int64 `json:"stack_kib"` // berthd, the stack up, idle
	// StackAnonKiB (heap, stacks) and StackFileKiB (its executable's
	// pages, which the kernel may drop and map back) add up to StackKiB.
	StackAnonKiB int64   `json:"stack_anon_kib"`
	StackFileKiB int64   `json:"stack_file_kib"`
	Monitors     int     `json:"monitors"`    // berth-monitor processes
	MonitorKiB   int64   `json:"monitor_kib"` // mean RSS of one
	IdleRatio    float64 `json:"idle_ratio"`  // IdleKiB / target
	StackRatio   float64 `json:"stack_ratio"` // StackKiB / target
	TargetMiB    float64 `json:"target_mib"`
	Pass         bool    `json:"pass"`
}

type storage struct {
	Layers           int     `json:"layers"`             // unique layers the stack uses
	StoredBytes      int64   `json:"stored_bytes"`       // berthd's layers + upper dirs
	UpperBytes       int64   `json:"upper_bytes"`        // the 5 upper dirs
	UniqueLayerBytes int64   `json:"unique_layer_bytes"` // the unique layers, unpacked
	CopiesBytes      int64   `json:"copies_bytes"`       // each container its own copy
	VsUnique         float64 `json:"vs_unique"`
	VsCopies         float64 `json:"vs_copies"`
	Target           float64 `json:"target"`
	Pass             bool    `json:"pass"`
}

// report is a run's figures: the stack part's (zero when it did not run)
// and the CAN part's (nil when it did not run).
type report struct {
	Machine    machine    `json:"machine"`
	Containers int        `json:"containers,omitzero"`
	Network    string     `json:"network_mode,omitzero"`
	Runs       int        `json:"runs,omitzero"`
	Cold       coldStart  `json:"cold_start,omitzero"`
	RSS        memory     `json:"berthd_rss,omitzero"`
	Storage    storage    `json:"storage,omitzero"`
	CAN        *canReport `json:"can,omitempty"`
}

// finish computes the medians, ratios and verdicts.
func (r *report) finish() {
	c := &r.Cold
	c.BerthMedianMs, c.DirectMedianMs, c.CLIMedianMs = median(c.BerthMs), median(c.DirectMs), median(c.CLIMs)
	c.Target = targetColdRatio
	if c.DirectMedianMs > 0 {
		c.Ratio = c.BerthMedianMs / c.DirectMedianMs
	}
	c.Pass = c.Ratio > 0 && c.Ratio <= c.Target

	m := &r.RSS
	m.TargetMiB = targetRSSMiB
	m.IdleRatio = mib(m.IdleKiB*1024) / m.TargetMiB
	m.StackRatio = mib(m.StackKiB*1024) / m.TargetMiB
	m.Pass = m.IdleRatio <= 1 && m.StackRatio <= 1

	s := &r.Storage
	s.Target = targetStorage
	if s.UniqueLayerBytes > 0 && s.CopiesBytes > 0 {
		s.VsUnique = float64(s.StoredBytes) / float64(s.UniqueLayerBytes)
		s.VsCopies = float64(s.StoredBytes) / float64(s.CopiesBytes)
	}
	s.Pass = s.VsUnique > 0 && s.VsUnique <= s.Target
}

func mib(bytes int64) float64 { return float64(bytes) / (1 << 20) }

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeTable prints the report for a person: the machine, one line per
// figure with its baseline and ratio, and a verdict per target.
func (r *report) writeTable(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "machine: %s, %d cores, Linux %s", m.CPU, m.Cores, m.Kernel)
	if m.RuntimeVersion != "" {
		fmt.Fprintf(w, ", %s", m.RuntimeVersion)
	}
	fmt.Fprintln(w)
	if r.Containers > 0 {
		r.writeStack(w)
	}
	if r.CAN != nil {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		r.CAN.writeTable(tw)
		tw.Flush()
		fmt.Fprintln(w)
		r.CAN.writeNotes(w)
	}
	fmt.Fprintln(w)
	if r.Containers > 0 {
		c, s, rss := r.Cold, r.Storage, r.RSS
		fmt.Fprintf(w, "%s cold start <= %.1fx %s\n", verdict(c.Pass), c.Target, m.Runtime)
		fmt.Fprintf(w, "%s berthd RSS <= %.0f MiB\n", verdict(rss.Pass), rss.TargetMiB)
		fmt.Fprintf(w, "%s shared storage within %.0f %% of the unique layers\n", verdict(s.Pass), (s.Target-1)*100)
	}
	if r.CAN != nil {
		r.CAN.writeVerdicts(w)
	}
}

// writeStack prints the stack part's figures.
func (r *report) writeStack(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "stack:   %d containers (busybox + one small image each, sleep), network_mode = %q; %d runs of each, alternating\n\n",
		r.Containers, r.Network, r.Runs)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	c, s, rss := r.Cold, r.Storage, r.RSS
	fmt.Fprintln(tw, "figure\tberth\tbaseline\tratio\ttarget\t")
	fmt.Fprintf(tw, "cold start, median\t%.1f ms\t%.1f ms (%s run -d)\t%.2f\t<= %.2f\t\n",
		c.BerthMedianMs, c.DirectMedianMs, m.Runtime, c.Ratio, c.Target)
	fmt.Fprintf(tw, "  of which berth CLI (ps)\t%.1f ms\t\t\t(info)\t\n", c.CLIMedianMs)
	fmt.Fprintf(tw, "berthd RSS, idle, no stack\t%.1f MiB\t%.0f MiB (target)\t%.2f\t<= 1\t\n",
		mib(rss.IdleKiB*1024), rss.TargetMiB, rss.IdleRatio)
	fmt.Fprintf(tw, "berthd RSS, idle, stack up\t%.1f MiB\t%.0f MiB (target)\t%.2f\t<= 1\t\n",
		mib(rss.StackKiB*1024), rss.TargetMiB, rss.StackRatio)
	fmt.Fprintf(tw, "  of which heap and stacks\t%.1f MiB\t\t\t(info)\t\n", mib(rss.StackAnonKiB*1024))
	fmt.Fprintf(tw, "  of which executable pages\t%.1f MiB\t\t\t(info)\t\n", mib(rss.StackFileKiB*1024))
	fmt.Fprintf(tw, "berthd RSS, as up returns\t%.1f MiB\t\t\t(info)\t\n", mib(rss.UpKiB*1024))
	fmt.Fprintf(tw, "berth-monitor RSS, each\t%.1f MiB\t(%d running)\t\t(info)\t\n",
		mib(rss.MonitorKiB*1024), rss.Monitors)
	fmt.Fprintf(tw, "disk vs unique layers\t%.2f MiB\t%.2f MiB (%d layers)\t%.3f\t<= %.2f\t\n",
		mib(s.StoredBytes), mib(s.UniqueLayerBytes), s.Layers, s.VsUnique, s.Target)
	fmt.Fprintf(tw, "disk vs a copy each\t%.2f MiB\t%.2f MiB\t%.3f\t(info)\t\n",
		mib(s.StoredBytes), mib(s.CopiesBytes), s.VsCopies)
	tw.Flush()
	fmt.Fprintf(w, "\ncold start runs (ms): berth %v, %s %v\n", c.BerthMs, m.Runtime, c.DirectMs)
	fmt.Fprintf(w, "disk: layers + %.1f KiB in 5 upper dirs; allocated blocks, hard links once\n", float64(s.UpperBytes)/1024)
}

func verdict(pass bool) string {
	if pass {
		return "PASS"
	}
	return "MISS"
}
