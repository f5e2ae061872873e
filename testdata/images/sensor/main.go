// Command sensor writes a fake temperature reading to kvdb every interval
// ("SET <key> <value>") and logs each write. It reconnects with exponential
// back-off (100ms to 5s) while kvdb is unreachable. SIGTERM exits 0.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	dbAddr := flag.String("db", "kvdb:7000", "kvdb address")
	key := flag.String("key", "sensor.temperature", "key to write")
	every := flag.Duration("interval", 500*time.Millisecond, "time between readings")
	flag.Parse()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(*every)
	defer tick.Stop()
	var conn net.Conn
	var rd *bufio.Reader
	backoff := 100 * time.Millisecond
	for n := 0; ; n++ {
		select {
		case <-sig:
			log.Print("sensor: terminating")
			os.Exit(0)
		case <-tick.C:
		}
		if conn == nil {
			c, err := net.DialTimeout("tcp", *dbAddr, time.Second)
			if err != nil {
				log.Printf("sensor: connect %s: %v (retry in %s)", *dbAddr, err, backoff)
				select {
				case <-sig:
					os.Exit(0)
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			conn, rd, backoff = c, bufio.NewReader(c), 100*time.Millisecond
		}
		v := 20 + 5*math.Sin(float64(n)/10)
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, err := fmt.Fprintf(conn, "SET %s %.2f\n", *key, v)
		var reply string
		if err == nil {
			reply, err = rd.ReadString('\n')
		}
		if err != nil || strings.TrimSpace(reply) != "OK" {
			log.Printf("sensor: write failed: %v %q", err, reply)
			conn.Close()
			conn = nil
			continue
		}
		log.Printf("sensor: %s = %.2f", *key, v)
	}
}
