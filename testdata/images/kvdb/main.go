// Command kvdb is a tiny key-value server used by berth's demo and test
// images. Protocol: one command per line over TCP — "SET k v" (answers
// "OK"), "GET k" (answers the value, or "ERR not found"), "KEYS" (answers
// the keys, space-separated, sorted), "PING" (answers "PONG"). Values are
// persisted to <data>/kvdb.json after every SET. With -ping ADDR it is a
// health-check client: it exits 0 if ADDR answers PONG within a second, else
// 1. SIGTERM exits 0.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", ":7000", "address to serve on")
	data := flag.String("data", "/data", "directory (a volume) holding kvdb.json")
	ping := flag.String("ping", "", "health check: PING this address and exit 0 or 1")
	flag.Parse()
	if *ping != "" {
		if err := doPing(*ping); err != nil {
			fmt.Fprintln(os.Stderr, "kvdb ping:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if err := serve(*listen, *data); err != nil {
		log.Fatal("kvdb: ", err)
	}
}

func doPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprintln(c, "PING")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "PONG" {
		return fmt.Errorf("answer %q", line)
	}
	return nil
}

type db struct {
	mu   sync.Mutex
	path string
	kv   map[string]string
}

func (d *db) save() error {
	b, _ := json.Marshal(d.kv)
	tmp := d.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, d.path)
}

func serve(listen, data string) error {
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	d := &db{path: filepath.Join(data, "kvdb.json"), kv: map[string]string{}}
	if b, err := os.ReadFile(d.path); err == nil {
		if err := json.Unmarshal(b, &d.kv); err != nil {
			return fmt.Errorf("%s: %w", d.path, err)
		}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	log.Printf("kvdb: serving on %s, %d keys loaded from %s", ln.Addr(), len(d.kv), d.path)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		log.Print("kvdb: terminating")
		os.Exit(0)
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go d.handle(c)
	}
}

func (d *db) handle(c net.Conn) {
	defer c.Close()
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		f := strings.SplitN(strings.TrimSpace(sc.Text()), " ", 3)
		d.mu.Lock()
		var reply string
		switch {
		case f[0] == "PING":
			reply = "PONG"
		case f[0] == "SET" && len(f) == 3:
			d.kv[f[1]] = f[2]
			reply = "OK"
			if err := d.save(); err != nil {
				reply = "ERR " + err.Error()
			}
		case f[0] == "GET" && len(f) == 2:
			v, ok := d.kv[f[1]]
			reply = v
			if !ok {
				reply = "ERR not found"
			}
		case f[0] == "KEYS":
			keys := make([]string, 0, len(d.kv))
			for k := range d.kv {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			reply = strings.Join(keys, " ")
		default:
			reply = "ERR usage: SET k v | GET k | KEYS | PING"
		}
		d.mu.Unlock()
		fmt.Fprintln(c, reply)
	}
}
