package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"go.einride.tech/can"
	"go.einride.tech/can/pkg/socketcan"
)

const addr = "239.64.0.1:20000"

func main() {
	n, _ := strconv.Atoi(os.Args[2])
	conn, err := socketcan.Dial("udp", addr)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	switch os.Args[1] {
	case "send":
		tx := socketcan.NewTransmitter(conn)
		start := time.Now()
		for i := 0; i < n; i++ {
			f := can.Frame{ID: 0x123, Length: 8}
			f.Data[0] = byte(i)
			if err := tx.TransmitFrame(nil, f); err != nil {
				fmt.Println(err)
				os.Exit(1)
			}
		}
		fmt.Printf("sent %d in %v: %.0f/s\n", n, time.Since(start), float64(n)/time.Since(start).Seconds())
	case "recv":
		rx := socketcan.NewReceiver(conn)
		got := 0
		var start time.Time
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		for rx.Receive() {
			if got == 0 {
				start = time.Now()
			}
			got++
			conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if got == n {
				break
			}
		}
		el := time.Since(start)
		fmt.Printf("received %d of %d in %v: %.0f/s (err %v)\n", got, n, el, float64(got)/el.Seconds(), rx.Err())
	}
}
