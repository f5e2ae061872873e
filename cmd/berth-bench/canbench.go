package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The CAN figures' loads. Each load runs a few rounds, and each round
// runs its paths one after the other, so that the machine's noise
// falls on all three alike. Each round first sends warm frames that are
// not counted (a fresh session's first reads pay for page faults and
// growing stacks; a container's session lives long), then the measured
// ones.
const (
	canRounds = 3
	maxRounds = 5 // the max throughput rounds are short, and the noisiest
	// fanoutRate is offered to the readers in the fan-out figure: a
	// little above the 50,000 frames/s target, so that the target is
	// met when every reader gets every frame.
	fanoutRate   = 52_000
	fanoutFrames = 52_000 // 1 s a round
	fanoutWarm   = 5_200
	// maxFrames are sent as fast as the slowest reader takes them, with
	// at most maxWindow in flight: well below every buffer on the path
	// (4096 frames per stream, 256 KiB per hub member), so a reader that
	// keeps up loses nothing.
	maxFrames = 100_000
	maxWarm   = 10_000
	maxWindow = 2048
	// latencyRate is the paced rate of the latency figure: one frame
	// every 500 µs, so that no frame queues behind another.
	latencyRate   = 2_000
	latencyFrames = 3_000 // 1.5 s a round
	latencyWarm   = 200
	fanoutReaders = 5
)

// The CAN targets README.md states.
const (
	targetFanoutRate  = 50_000.0 // frames/s in, delivered to each of 5 readers, no loss
	targetAddedP99us  = 250.0    // p99 of the device socket read minus the plugin stream read, frame by frame, at latencyRate
	targetPluginRSSMi = 15.0     // one vcan plugin process, idle
)

// canPaths are one load's phases: the baseline reading the plugin stream
// directly, and the broker with 1 and with fanoutReaders readers. The
// latency load has no Direct phase: each of its phases has a reader of
// the plugin stream beside the broker's, and Breakdown a broker session
// read in this process too.
type canPaths struct {
	Direct    *phaseResult `json:"direct,omitempty"`
	Broker1   *phaseResult `json:"broker_1_reader"`
	Broker5   *phaseResult `json:"broker_5_readers"`
	Breakdown *phaseResult `json:"breakdown,omitempty"`
}

type canReport struct {
	Fanout  canPaths `json:"fanout_paced"`   // at fanoutRate
	Max     canPaths `json:"max_throughput"` // flow-controlled
	Latency canPaths `json:"latency_paced"`  // at latencyRate, paired

	FanoutRate  float64 `json:"fanout_offered_frames_per_s"`
	LatencyRate float64 `json:"latency_frames_per_s"`
	// The broker's added latency, 1 reader: its read minus the direct
	// reader's, frame by frame.
	AddedP50us float64 `json:"added_p50_us"`
	AddedP99us float64 `json:"added_p99_us"`

	PluginIdle  rss `json:"plugin_idle_rss"`  // just started, before any traffic
	PluginAfter rss `json:"plugin_after_rss"` // idle again after the load

	Rounds     int    `json:"rounds"`
	LoadBefore string `json:"loadavg_before"` // the host's load average (1, 5, 15 min), as /proc/loadavg says
	LoadAfter  string `json:"loadavg_after"`

	FanoutPass  bool `json:"fanout_pass"`
	LatencyPass bool `json:"latency_pass"`
	RSSPass     bool `json:"plugin_rss_pass"`
}

// measureCAN starts the CAN set-up with the plugin from bin, measures
// every CAN figure and stops the set-up, also on failure.
func measureCAN(ctx context.Context, bin string, logf func(string, ...any)) (rep *canReport, err error) {
	if _, err := os.Stat(filepath.Join(bin, canPlugin)); err != nil {
		return nil, fmt.Errorf("%w (run make build)", err)
	}
	r, err := startCAN(ctx, bin)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := r.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("CAN cleanup: %w", cerr))
		}
	}()
	rep = &canReport{FanoutRate: fanoutRate, LatencyRate: latencyRate, Rounds: canRounds, LoadBefore: loadAvg()}
	if err := pause(ctx, idleWait); err != nil {
		return nil, err
	}
	if rep.PluginIdle, err = readRSS(r.pid); err != nil {
		return nil, err
	}

	type path struct {
		name string
		dst  **phaseResult
		p    func(phase) phase
	}
	readers := func(vs ...via) func(phase) phase {
		return func(p phase) phase { p.readers = vs; return p }
	}
	plugin, socket1, socket5 := readers(viaPlugin), readers(viaSocket), readers(slices.Repeat([]via{viaSocket}, fanoutReaders)...)
	for _, l := range []struct {
		name   string
		p      phase
		rounds int
		paths  []path
	}{
		{"fan-out at 52,000 frames/s", phase{rate: fanoutRate, warm: fanoutWarm, n: fanoutFrames}, canRounds, []path{
			{"plugin stream", &rep.Fanout.Direct, plugin},
			{"broker, 1 reader", &rep.Fanout.Broker1, socket1},
			{"broker, 5 readers", &rep.Fanout.Broker5, socket5},
		}},
		{"max throughput", phase{window: maxWindow, warm: maxWarm, n: maxFrames}, maxRounds, []path{
			{"plugin stream", &rep.Max.Direct, plugin},
			{"broker, 1 reader", &rep.Max.Broker1, socket1},
			{"broker, 5 readers", &rep.Max.Broker5, socket5},
		}},
		{"latency at 2,000 frames/s", phase{rate: latencyRate, warm: latencyWarm, n: latencyFrames}, canRounds, []path{
			{"broker, 1 reader + plugin stream", &rep.Latency.Broker1, readers(viaPlugin, viaSocket)},
			{"broker, 5 readers + plugin stream", &rep.Latency.Broker5, readers(append([]via{viaPlugin}, slices.Repeat([]via{viaSocket}, fanoutReaders)...)...)},
			{"broker, 1 reader + session + plugin stream", &rep.Latency.Breakdown, readers(viaPlugin, viaSession, viaSocket)},
		}},
	} {
		for _, pt := range l.paths {
			*pt.dst = &phaseResult{}
		}
		for round := range l.rounds {
			for _, pt := range l.paths {
				if err := r.run(ctx, pt.p(l.p), *pt.dst); err != nil {
					return nil, fmt.Errorf("CAN %s, %s, round %d: %w", l.name, pt.name, round+1, err)
				}
			}
		}
		for _, pt := range l.paths {
			res := *pt.dst
			res.finish()
			logf("CAN %s, %s: in %.0f frames/s; slowest reader %.0f frames/s (rounds %.0f), most lost %d",
				l.name, pt.name, res.InRate, res.minRate(), res.RoundRates, res.maxLost())
			for k, v := range res.Latency {
				logf("    latency %s: p50 %.0f µs, p99 %.0f µs, max %.0f µs", k, v.P50, v.P99, v.Max)
			}
			for k, v := range res.Added {
				logf("    added %s: p50 %.0f µs, p99 %.0f µs, max %.0f µs", k, v.P50, v.P99, v.Max)
			}
		}
	}

	if err := pause(ctx, idleWait); err != nil {
		return nil, err
	}
	if rep.PluginAfter, err = readRSS(r.pid); err != nil {
		return nil, err
	}
	rep.LoadAfter = loadAvg()
	rep.finish()
	return rep, nil
}

// loadAvg is the host's 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// finish computes the added latency and the verdicts.
func (c *canReport) finish() {
	added := c.Latency.Broker1.addedOf(viaSocket, viaPlugin)
	c.AddedP50us, c.AddedP99us = added.P50, added.P99
	f := c.Fanout.Broker5
	c.FanoutPass = f.InRate >= targetFanoutRate && f.minRate() >= targetFanoutRate && f.maxLost() == 0
	c.LatencyPass = c.AddedP99us <= targetAddedP99us
	c.RSSPass = mib(c.PluginIdle.KiB*1024) <= targetPluginRSSMi
}
