package cannative

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-io/berth/core/broker"
)

// BenchmarkPath compares a raw SocketCAN socket pair on a vcan bus with the
// native path (vxcan + can-gw) in each direction: ping-pong latency (p50,
// p99) and windowed throughput (frames/s). Run it in the HIL VM:
//
//	go build -o bin/berth-hil ./cmd/berth-hil
//	CGO_ENABLED=0 go test -exec $PWD/bin/berth-hil -run '^$' -bench Path ./core/cannative
//
// Under TCG (qemu without KVM) the absolute figures are an emulated CPU's;
// compare the paths with each other.
func BenchmarkPath(b *testing.B) {
	needKernel(b)
	if cpu, err := os.ReadFile("/proc/cpuinfo"); err == nil && strings.Contains(string(cpu), "TCG") {
		b.Log("under TCG: qemu emulates the CPU, so compare the paths, not the absolute figures")
	}
	addVcan(b, "bcraw0", false) // no link on it: the raw figures pay for no rule
	addVcan(b, "bcnat0", false)
	ns := newNetNS(b, "bench")
	all := mustFilters(b, "*")
	mustAttach(b, Attachment{Bus: "bcnat0", Netns: ns, Grant: broker.Grant{Name: "bench", Device: "can0", Receive: all, Send: all}})

	paths := []struct {
		name       string
		txNS, txIf string
		rxNS, rxIf string
	}{
		{"raw", "", "bcraw0", "", "bcraw0"},
		{"native-to-container", "", "bcnat0", ns, "bench"},
		{"native-to-bus", ns, "bench", "", "bcnat0"},
	}
	for _, p := range paths {
		// Fresh sockets for every run, so none holds frames of another.
		run := func(bench func(*testing.B, *canSock, *canSock)) func(*testing.B) {
			return func(b *testing.B) {
				tx, rx := dialCAN(b, p.txNS, p.txIf, sockOpt{anyCPU: true}), dialCAN(b, p.rxNS, p.rxIf, sockOpt{})
				defer tx.close()
				defer rx.close()
				bench(b, tx, rx)
			}
		}
		b.Run(p.name+"/latency", run(benchLatency))
		b.Run(p.name+"/throughput", run(benchThroughput))
	}
}

// seqFrame is frame i of a run: its sequence number in the data.
func seqFrame(i int) frame {
	f := std(0x123, make([]byte, 8)...)
	binary.LittleEndian.PutUint64(f.data, uint64(i))
	return f
}

// readSeq reads the next frame of a run and returns its sequence number.
func readSeq(rx *canSock) (int, error) {
	f, ok, err := rx.read(5 * time.Second)
	if err == nil && (!ok || len(f.data) != 8) {
		err = fmt.Errorf("%s: frame lost (got %v)", rx.where, f)
	}
	if err != nil {
		return 0, err
	}
	return int(binary.LittleEndian.Uint64(f.data)), nil
}

// benchLatency sends one frame at a time and waits for it: the one-way
// latency of the path, as p50 and p99 in microseconds.
func benchLatency(b *testing.B, tx, rx *canSock) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		tx.send(b, seqFrame(i))
		got, err := readSeq(rx)
		if err == nil && got != i {
			err = fmt.Errorf("%s: frame %d arrived, want %d", rx.where, got, i)
		}
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// benchThroughput sends b.N frames with at most window of them in flight
// (so no socket buffer overflows) and reports the frames/s received and
// how many arrived after a later one: the sender may move between CPUs,
// and a virtual CAN interface queues a frame on the CPU that sent it.
// Every frame must arrive, once.
func benchThroughput(b *testing.B, tx, rx *canSock) {
	const window = 256
	inFlight := make(chan struct{}, window)
	errc := make(chan error, 1)
	var reordered int
	b.ResetTimer()
	start := time.Now()
	go func() {
		seen := make([]bool, b.N)
		top := -1
		for range b.N {
			got, err := readSeq(rx)
			switch {
			case err != nil:
			case got < 0 || got >= b.N || seen[got]:
				err = fmt.Errorf("%s: frame %d arrived twice or was never sent", rx.where, got)
			case got < top:
				reordered++
			}
			if err != nil {
				errc <- err
				return
			}
			seen[got], top = true, max(top, got)
			<-inFlight
		}
		errc <- nil
	}()
	for i := 0; i < b.N; i++ {
		select {
		case inFlight <- struct{}{}:
		case err := <-errc:
			b.Fatal(err) // the reader stopped early
		}
		tx.send(b, seqFrame(i))
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "frames/s")
	b.ReportMetric(float64(reordered), "reordered")
}
