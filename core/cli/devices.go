package cli

import (
	"fmt"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berth-io/berth/core/api"
	"github.com/berth-io/berth/devices/can"
)

func newDevicesCommand(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "devices [--json]",
		Short: "List the board's devices and the containers using them",
		Long: `List every device of the board berthd runs (--board): its class, the plugin
that drives it and the plugin's ID for it, its health, how often the plugin
was restarted, and the plugin's counters (frames received and sent, errors,
drops). Below, each container grant that has held a session on a device
since berthd started: how many of its sessions are open now, and summed
over all of them, the frames its filter selected, delivered to the
container and dropped because it read too slowly, and the frames it sent,
had refused by its grant, or held back by its send rate.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			c, err := e.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			ds, err := c.Devices(cmd.Context())
			if err != nil {
				return fmt.Errorf("devices: %w", err)
			}
			if asJSON {
				return writeJSON(e.Out, devicesJSON(ds))
			}
			return e.printDevices(ds)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the devices as JSON")
	return cmd
}

func (e *env) printDevices(ds api.Devices) error {
	if ds.Board == "" {
		fmt.Fprintln(e.Out, "berthd runs without a board file, so it has no devices: start it with --board FILE")
		return nil
	}
	tw := tabwriter.NewWriter(e.Out, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tCLASS\tPLUGIN\tID\tHEALTH\tRESTARTS\tRX\tTX\tERRORS\tDROPS")
	for _, d := range ds.Devices {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", d.Name, d.Class, d.Plugin, d.ID, d.Health, d.Restarts,
			counter(d, can.CounterRxFrames), counter(d, can.CounterTxFrames), counter(d, can.CounterErrors), counter(d, can.CounterDrops))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, d := range ds.Devices {
		if d.Reason != "" {
			fmt.Fprintf(e.Out, "%s: %s\n", d.Name, d.Reason)
		}
	}
	var sessions int
	for _, d := range ds.Devices {
		sessions += len(d.Sessions)
	}
	if sessions == 0 {
		return nil
	}
	fmt.Fprintln(e.Out)
	tw = tabwriter.NewWriter(e.Out, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tCONTAINER\tGRANT\tOPEN\tRECEIVED\tDELIVERED\tDROPPED\tSENT\tREFUSED\tRATE-LIMITED")
	for _, d := range ds.Devices {
		for _, s := range d.Sessions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", d.Name, s.Container, s.Grant, s.Open,
				s.Received, s.Delivered, s.Dropped, s.Sent, s.Refused, s.RateLimited)
		}
	}
	return tw.Flush()
}

// counter prints one of a device's counters, "-" when its plugin does not
// report it (yet).
func counter(d api.Device, name string) string {
	v, ok := d.Counters[name]
	if !ok {
		return "-"
	}
	return fmt.Sprint(v)
}

type deviceJSON struct {
	Name       string            `json:"name"`
	Class      string            `json:"class"`
	Plugin     string            `json:"plugin"`
	ID         string            `json:"id"`
	Available  bool              `json:"available"`
	Health     string            `json:"health"`
	Reason     string            `json:"reason,omitempty"`
	Restarts   int               `json:"restarts"`
	Attributes map[string]string `json:"attributes,omitempty"`
	Counters   map[string]uint64 `json:"counters,omitempty"`
	Sessions   []sessionJSON     `json:"sessions"`
}

type sessionJSON struct {
	Container   string `json:"container"`
	Grant       string `json:"grant"`
	Open        int    `json:"open"`
	Received    uint64 `json:"received"`
	Delivered   uint64 `json:"delivered"`
	Dropped     uint64 `json:"dropped"`
	Sent        uint64 `json:"sent"`
	Refused     uint64 `json:"refused"`
	RateLimited uint64 `json:"rate_limited"`
}

func devicesJSON(ds api.Devices) any {
	out := struct {
		Board   string       `json:"board"`
		Devices []deviceJSON `json:"devices"`
	}{Board: ds.Board, Devices: []deviceJSON{}}
	for _, d := range ds.Devices {
		dj := deviceJSON{Name: d.Name, Class: d.Class, Plugin: d.Plugin, ID: d.ID, Available: d.Available,
			Health: d.Health, Reason: d.Reason, Restarts: d.Restarts, Attributes: d.Attributes, Counters: d.Counters,
			Sessions: []sessionJSON{}}
		for _, s := range d.Sessions {
			dj.Sessions = append(dj.Sessions, sessionJSON(s))
		}
		sort.SliceStable(dj.Sessions, func(i, j int) bool { return dj.Sessions[i].Container < dj.Sessions[j].Container })
		out.Devices = append(out.Devices, dj)
	}
	return out
}
