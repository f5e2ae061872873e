// Command cantool is a CAN program for containers, written the way existing
// einride-based code is: socketcan.NewReceiver and socketcan.NewTransmitter,
// on a connection from canwire.Dial instead of socketcan.DialContext (the one
// line a port changes). berth's tests and demo run it inside containers.
//
//	cantool dump GRANT [-n N] [-timeout D]   print received frames, one a line
//	cantool send GRANT FRAME...             send frames (cansend syntax: 123#DEADBEEF)
//	cantool every GRANT FRAME INTERVAL      send FRAME every INTERVAL, forever
//	cantool flood GRANT FRAME N             send N frames as fast as allowed; print the counts
//
// Received frames print as "GRANT 123#DEADBEEF". A refused send prints the
// broker's answer on stderr and exits 1 (send) or is counted (flood).
// SIGTERM and SIGINT exit 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"go.einride.tech/can"
	"go.einride.tech/can/pkg/socketcan"

	"github.com/berth-io/berth/devices/can/canwire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "cantool:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) < 2 {
		return errors.New("usage: cantool dump|send|every|flood GRANT ...")
	}
	cmd, grant, rest := args[0], args[1], args[2:]
	conn, err := canwire.Dial(ctx, canwire.DefaultSocket, grant)
	if err != nil {
		return err
	}
	defer conn.Close()
	switch cmd {
	case "dump":
		fs := flag.NewFlagSet("dump", flag.ContinueOnError)
		n := fs.Int("n", 0, "exit after N frames (0: never)")
		timeout := fs.Duration("timeout", 0, "exit 0 after this long (0: never)")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if *timeout > 0 {
			conn.SetReadDeadline(time.Now().Add(*timeout))
		}
		go func() { <-ctx.Done(); conn.Close() }()
		rx := socketcan.NewReceiver(conn)
		for i := 0; *n == 0 || i < *n; i++ {
			if !rx.Receive() {
				if err := rx.Err(); err != nil && ctx.Err() == nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					return err
				}
				return nil
			}
			fmt.Printf("%s %s\n", grant, rx.Frame())
		}
		return nil
	case "send":
		tx := socketcan.NewTransmitter(conn)
		for _, s := range rest {
			f, err := parse(s)
			if err != nil {
				return err
			}
			if err := tx.TransmitFrame(ctx, f); err != nil {
				return fmt.Errorf("send %s: %w", s, err)
			}
			fmt.Printf("sent %s\n", f)
		}
		return nil
	case "every":
		if len(rest) != 2 {
			return errors.New("usage: cantool every GRANT FRAME INTERVAL")
		}
		f, err := parse(rest[0])
		if err != nil {
			return err
		}
		every, err := time.ParseDuration(rest[1])
		if err != nil {
			return err
		}
		tx := socketcan.NewTransmitter(conn)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for n := 0; ; n++ {
			if f.Length > 0 {
				f.Data[0] = byte(n) // a rolling counter, so each frame differs
			}
			if err := tx.TransmitFrame(ctx, f); err != nil && ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "send %s: %v\n", f, err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
	case "flood":
		if len(rest) != 2 {
			return errors.New("usage: cantool flood GRANT FRAME N")
		}
		f, err := parse(rest[0])
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(rest[1])
		if err != nil {
			return fmt.Errorf("N %q: %w", rest[1], err)
		}
		tx := socketcan.NewTransmitter(conn)
		var sent, refused int
		began := time.Now()
		for range n {
			if err := tx.TransmitFrame(ctx, f); err != nil {
				refused++
				continue
			}
			sent++
		}
		fmt.Printf("sent %d refused %d in %s\n", sent, refused, time.Since(began).Round(time.Millisecond))
		return nil
	}
	return fmt.Errorf("unknown command %q: want dump, send, every or flood", cmd)
}

func parse(s string) (can.Frame, error) {
	var f can.Frame
	if err := f.UnmarshalString(s); err != nil {
		return can.Frame{}, fmt.Errorf("frame %q: %w (write it as cansend does: 123#DEADBEEF)", s, err)
	}
	return f, nil
}
