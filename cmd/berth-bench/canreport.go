package main

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
)

// writeTable prints the CAN figures, in the same columns as the
// stack's, to tw.
func (c *canReport) writeTable(tw *tabwriter.Writer) {
	fmt.Fprintln(tw, "figure\tberth\tbaseline: the plugin stream read directly\tratio\ttarget\t")
	for _, row := range []struct {
		name string
		res  *phaseResult
	}{{"1 reader", c.Fanout.Broker1}, {"5 readers", c.Fanout.Broker5}} {
		d, b := c.Fanout.Direct, row.res
		target := "(info)"
		if b == c.Fanout.Broker5 {
			target = fmt.Sprintf(">= %s/s, 0 lost", thousands(targetFanoutRate))
		}
		fmt.Fprintf(tw, "CAN fan-out at %s frames/s, %s\t%s frames/s%s, %s lost\t%s frames/s, %d lost\t%.2f\t%s\t\n",
			thousands(c.FanoutRate), row.name, thousands(b.minRate()), each(b), mostLost(b),
			thousands(d.minRate()), d.maxLost(), ratio(b.minRate(), d.minRate()), target)
	}
	for _, row := range []struct {
		name string
		res  *phaseResult
	}{{"1 reader", c.Max.Broker1}, {"5 readers", c.Max.Broker5}} {
		d, b := c.Max.Direct, row.res
		fmt.Fprintf(tw, "CAN max throughput, %s, median round\t%s frames/s%s, %s lost\t%s frames/s, %d lost\t%.2f\t(info)\t\n",
			row.name, thousands(b.MedianRate), each(b), mostLost(b), thousands(d.MedianRate), d.maxLost(),
			ratio(b.MedianRate, d.MedianRate))
	}
	for _, row := range []struct {
		name string
		res  *phaseResult
	}{{"1 reader", c.Latency.Broker1}, {"5 readers", c.Latency.Broker5}} {
		b, d, a := row.res.of(viaSocket), row.res.of(viaPlugin), row.res.addedOf(viaSocket, viaPlugin)
		target := "(info)"
		if row.res == c.Latency.Broker1 {
			target = fmt.Sprintf("added p99 <= %.0f µs", targetAddedP99us)
		}
		fmt.Fprintf(tw, "CAN latency p50 / p99 at %s frames/s, %s\t%.0f / %.0f µs, added %.0f / %.0f µs\t%.0f / %.0f µs\t%.2f / %.2f\t%s\t\n",
			thousands(c.LatencyRate), row.name, b.P50, b.P99, a.P50, a.P99, d.P50, d.P99, ratio(b.P50, d.P50), ratio(b.P99, d.P99), target)
	}
	bd := c.Latency.Breakdown
	s, k := bd.addedOf(viaSession, viaPlugin), bd.addedOf(viaSocket, viaSession)
	fmt.Fprintf(tw, "  of which broker / device socket, p50 / p99\t%.0f / %.0f µs, %.0f / %.0f µs\t\t\t(info)\t\n", s.P50, s.P99, k.P50, k.P99)
	fmt.Fprintf(tw, "vcan plugin RSS, idle, before any traffic\t%.1f MiB\t%.0f MiB (target)\t%.2f\t<= 1\t\n",
		mib(c.PluginIdle.KiB*1024), targetPluginRSSMi, mib(c.PluginIdle.KiB*1024)/targetPluginRSSMi)
	fmt.Fprintf(tw, "vcan plugin RSS, idle after the load\t%.1f MiB\t\t\t(info)\t\n", mib(c.PluginAfter.KiB*1024))
}

// writeNotes prints how the CAN figures were taken, the CPU they cost,
// the plugin's memory and where frames were lost, if any were.
func (c *canReport) writeNotes(w io.Writer) {
	fmt.Fprintf(w, "CAN: berth-plugin-vcan under pluginhost, the broker, canwire clients on a unixpacket socket; frames injected by a member of the plugin's vcan hub;\n")
	fmt.Fprintf(w, "     %d rounds of each path (max throughput %d), interleaved; latency from the hub's bus time to the reader's Recv; max throughput keeps <= %d frames in flight\n",
		c.Rounds, maxRounds, maxWindow)
	fmt.Fprintf(w, "CAN host load average (1 5 15 min): %s before, %s after\n", c.LoadBefore, c.LoadAfter)
	fmt.Fprintf(w, "     the latency rows read the plugin stream beside the broker's readers; added = device socket read - plugin stream read of the same frame;\n")
	fmt.Fprintf(w, "     the broker / device socket split comes from a third phase with a broker session read in-process too\n")
	fmt.Fprintf(w, "CAN frames in (measured): fan-out %s / %s / %s frames/s (plugin stream / broker 1 / broker 5), latency %s / %s frames/s\n",
		thousands(c.Fanout.Direct.InRate), thousands(c.Fanout.Broker1.InRate), thousands(c.Fanout.Broker5.InRate),
		thousands(c.Latency.Broker1.InRate), thousands(c.Latency.Broker5.InRate))
	loads := []struct {
		name  string
		paths canPaths
	}{{"fan-out", c.Fanout}, {"max throughput", c.Max}, {"latency", c.Latency}}
	for _, l := range loads[:2] {
		fmt.Fprintf(w, "CAN CPU per frame, %s: plugin %.1f / %.1f / %.1f µs, berth-bench %.1f / %.1f / %.1f µs\n", l.name,
			l.paths.Direct.PluginCPUus, l.paths.Broker1.PluginCPUus, l.paths.Broker5.PluginCPUus,
			l.paths.Direct.BenchCPUus, l.paths.Broker1.BenchCPUus, l.paths.Broker5.BenchCPUus)
	}
	fmt.Fprintf(w, "CAN CPU per frame, latency: plugin %.1f / %.1f µs, berth-bench %.1f / %.1f µs (broker 1 / broker 5, each + plugin stream)\n",
		c.Latency.Broker1.PluginCPUus, c.Latency.Broker5.PluginCPUus, c.Latency.Broker1.BenchCPUus, c.Latency.Broker5.BenchCPUus)
	fmt.Fprintf(w, "vcan plugin RSS: idle %.1f MiB anonymous + %.1f MiB file-backed; after the load %.1f + %.1f MiB\n",
		mib(c.PluginIdle.AnonKiB*1024), mib(c.PluginIdle.FileKiB*1024), mib(c.PluginAfter.AnonKiB*1024), mib(c.PluginAfter.FileKiB*1024))
	for _, l := range loads {
		for _, p := range []struct {
			name string
			res  *phaseResult
		}{{"plugin stream", l.paths.Direct}, {"broker, 1 reader", l.paths.Broker1}, {"broker, 5 readers", l.paths.Broker5}} {
			if p.res == nil || p.res.maxLost() == 0 {
				continue
			}
			fmt.Fprintf(w, "CAN loss, %s, %s: plugin process dropped %d;", l.name, p.name, p.res.DeviceDrops)
			for i, r := range p.res.Readers {
				fmt.Fprintf(w, " reader %d lost %d (plugin handle %d, broker session %d, client %d)", i+1, r.Lost, r.PluginDrops, r.SessionDrops, r.ClientDrops)
			}
			fmt.Fprintln(w)
		}
	}
}

// writeVerdicts prints one line per CAN target.
func (c *canReport) writeVerdicts(w io.Writer) {
	fmt.Fprintf(w, "%s CAN fan-out: >= %s frames/s in, delivered to each of %d readers, none lost\n",
		verdict(c.FanoutPass), thousands(targetFanoutRate), fanoutReaders)
	fmt.Fprintf(w, "%s CAN broker's added latency p99 <= %.0f µs (%+.0f µs)\n", verdict(c.LatencyPass), targetAddedP99us, c.AddedP99us)
	fmt.Fprintf(w, "%s vcan plugin RSS <= %.0f MiB, idle before any traffic (%.1f MiB; idle after the load: %.1f MiB)\n",
		verdict(c.RSSPass), targetPluginRSSMi, mib(c.PluginIdle.KiB*1024), mib(c.PluginAfter.KiB*1024))
}

// each says how a phase's per-reader figure is chosen.
func each(p *phaseResult) string {
	if len(p.Readers) > 1 {
		return " each (slowest)"
	}
	return ""
}

func mostLost(p *phaseResult) string {
	if len(p.Readers) > 1 {
		return "at most " + strconv.FormatInt(p.maxLost(), 10)
	}
	return strconv.FormatInt(p.maxLost(), 10)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// thousands formats x rounded to an integer with comma separators.
func thousands(x float64) string {
	s := strconv.FormatInt(int64(x+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
