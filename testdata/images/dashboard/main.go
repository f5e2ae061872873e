// Command dashboard reads every key from kvdb once per interval and prints
// "key=value" pairs on one line. It reconnects when kvdb is unreachable.
// SIGTERM exits 0.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	dbAddr := flag.String("db", "kvdb:7000", "kvdb address")
	every := flag.Duration("interval", time.Second, "time between reads")
	flag.Parse()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(*every)
	defer tick.Stop()
	for {
		select {
		case <-sig:
			log.Print("dashboard: terminating")
			os.Exit(0)
		case <-tick.C:
		}
		line, err := snapshot(*dbAddr)
		if err != nil {
			log.Printf("dashboard: %v", err)
			continue
		}
		fmt.Println("dashboard:", line)
	}
}

func snapshot(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	rd := bufio.NewReader(c)
	ask := func(cmd string) (string, error) {
		if _, err := fmt.Fprintln(c, cmd); err != nil {
			return "", err
		}
		s, err := rd.ReadString('\n')
		return strings.TrimSpace(s), err
	}
	keys, err := ask("KEYS")
	if err != nil {
		return "", err
	}
	if keys == "" {
		return "(no data yet)", nil
	}
	var out []string
	for _, k := range strings.Fields(keys) {
		v, err := ask("GET " + k)
		if err != nil {
			return "", err
		}
		out = append(out, k+"="+v)
	}
	return strings.Join(out, " "), nil
}
