package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCANRig runs short rounds on the CAN set-up the figures use, end to
// end: the vcan plugin built from source and started by pluginhost, the
// injector on its hub, the broker, the device socket, and readers of every
// kind. Every reader must get every frame, in order, with latencies.
func TestCANRig(t *testing.T) {
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "github.com/berth-io/berth/plugins/vcan/cmd/"+canPlugin)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", canPlugin, err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := startCAN(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := r.close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()

	idle, err := readRSS(r.pid)
	if err != nil {
		t.Fatal(err)
	}
	if idle.KiB <= 0 || idle.AnonKiB <= 0 || idle.FileKiB <= 0 {
		t.Errorf("plugin RSS %+v: want every part above zero", idle)
	}

	for _, tc := range []struct {
		name  string
		p     phase
		added []string // the Added keys the phase must have
	}{
		{"paced, every kind", phase{readers: []via{viaPlugin, viaSession, viaSocket, viaSocket}, rate: 2000, warm: 20, n: 300},
			[]string{"broker session - plugin stream", "device socket - plugin stream", "device socket - broker session"}},
		{"flow-controlled", phase{readers: []via{viaSocket, viaSocket}, window: 64, warm: 100, n: 3000}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := &phaseResult{}
			for range 2 {
				if err := r.run(ctx, tc.p, res); err != nil {
					t.Fatal(err)
				}
			}
			res.finish()
			if res.Rounds != 2 || res.Measured != 2*tc.p.n || res.InRate <= 0 {
				t.Errorf("rounds %d, measured %d, in %.0f frames/s: want 2, %d, above 0", res.Rounds, res.Measured, res.InRate, 2*tc.p.n)
			}
			if len(res.RoundRates) != 2 || res.RoundRates[0] <= 0 || res.RoundRates[1] <= 0 || res.MedianRate <= 0 {
				t.Errorf("round rates %v, median %.0f: want 2 above 0", res.RoundRates, res.MedianRate)
			}
			if len(res.Readers) != len(tc.p.readers) {
				t.Fatalf("%d reader results, want %d", len(res.Readers), len(tc.p.readers))
			}
			for i, rr := range res.Readers {
				if rr.Via != tc.p.readers[i].String() || rr.Got != int64(2*tc.p.n) || rr.Lost != 0 || rr.Disorder != 0 || rr.Rate <= 0 {
					t.Errorf("reader %d: %+v, want %s, all %d frames in order", i+1, rr, tc.p.readers[i], 2*tc.p.n)
				}
			}
			for _, v := range tc.p.readers {
				if l := res.of(v); l.P50 <= 0 || l.P99 < l.P50 || l.Max < l.P99 {
					t.Errorf("latency on the %s: %+v", v, l)
				}
			}
			if len(res.Added) != len(tc.added) {
				t.Errorf("added latencies %v, want %v", res.Added, tc.added)
			}
			for _, k := range tc.added {
				if _, ok := res.Added[k]; !ok {
					t.Errorf("no added latency %q in %v", k, res.Added)
				}
			}
		})
	}
}

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Microsecond)
	}
	got := percentiles(ds)
	if want := (latency{Min: 1, P50: 50, P99: 99, Max: 100}); got != want {
		t.Errorf("percentiles of 1..100 µs = %+v, want %+v", got, want)
	}
	if got := percentiles(nil); got != (latency{}) {
		t.Errorf("percentiles of nothing = %+v, want zero", got)
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999.4: "999", 1000: "1,000", 52000: "52,000", 1234567.8: "1,234,568"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}

// TestCANTable checks the verdicts a CAN report prints: a loss among the
// 5 readers, or an added p99 over the target, is a MISS.
func TestCANTable(t *testing.T) {
	phaseOf := func(got int64, n int, vs ...via) *phaseResult {
		p := &phaseResult{Rounds: 1, Measured: n, sendSecs: 1, lat: map[string][]time.Duration{}, added: map[string][]time.Duration{}}
		for _, v := range vs {
			p.Readers = append(p.Readers, readerResult{Via: v.String(), Got: got, Lost: int64(n) - got, secs: 1})
			p.lat[v.String()] = []time.Duration{100 * time.Microsecond}
		}
		return p
	}
	five := []via{viaSocket, viaSocket, viaSocket, viaSocket, viaSocket}
	for _, tc := range []struct {
		name           string
		lost           int64
		added          time.Duration
		fanout, latOK  bool
		rssKiB         int64
		wantRSSVerdict string
	}{
		{"all met", 0, 100 * time.Microsecond, true, true, 10 << 10, "PASS vcan plugin RSS"},
		{"all missed", 3, 300 * time.Microsecond, false, false, 16 << 10, "MISS vcan plugin RSS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &canReport{FanoutRate: fanoutRate, LatencyRate: latencyRate, Rounds: 1,
				PluginIdle: rss{KiB: tc.rssKiB}, PluginAfter: rss{KiB: tc.rssKiB}}
			c.Fanout = canPaths{Direct: phaseOf(52000, 52000, viaPlugin), Broker1: phaseOf(52000, 52000, viaSocket),
				Broker5: phaseOf(52000-tc.lost, 52000, five...)}
			c.Max = canPaths{Direct: phaseOf(1000, 1000, viaPlugin), Broker1: phaseOf(1000, 1000, viaSocket), Broker5: phaseOf(1000, 1000, five...)}
			c.Latency = canPaths{Broker1: phaseOf(10, 10, viaPlugin, viaSocket), Broker5: phaseOf(10, 10, viaPlugin, viaSocket),
				Breakdown: phaseOf(10, 10, viaPlugin, viaSession, viaSocket)}
			c.Latency.Broker1.added["device socket - plugin stream"] = []time.Duration{tc.added}
			for _, p := range []*phaseResult{c.Fanout.Direct, c.Fanout.Broker1, c.Fanout.Broker5, c.Max.Direct, c.Max.Broker1,
				c.Max.Broker5, c.Latency.Broker1, c.Latency.Broker5, c.Latency.Breakdown} {
				p.finish()
			}
			c.finish()
			if c.FanoutPass != tc.fanout || c.LatencyPass != tc.latOK {
				t.Errorf("fan-out pass %v, latency pass %v; want %v, %v", c.FanoutPass, c.LatencyPass, tc.fanout, tc.latOK)
			}
			var out bytes.Buffer
			(&report{Machine: machine{CPU: "test", Cores: 2}, CAN: c}).writeTable(&out)
			for _, want := range []string{"CAN fan-out at 52,000 frames/s, 5 readers", "of which broker / device socket", tc.wantRSSVerdict} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("table lacks %q:\n%s", want, out.String())
				}
			}
			if strings.Contains(out.String(), "stack:") {
				t.Errorf("a CAN-only report prints the stack part:\n%s", out.String())
			}
		})
	}
}
