package exepages

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// rssFile returns this process's RssFile in KiB.
func rssFile(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssFile:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// Releasing the start-up pages shrinks the mapped file pages of a running
// process, which carries on (its code is mapped back as it runs).
func TestRelease(t *testing.T) {
	before := rssFile(t)
	if err := Release(); err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	t.Logf("RssFile %d KiB before, %d KiB after", before, after)
	if after >= before {
		t.Errorf("RssFile %d KiB after release, %d KiB before: want less", after, before)
	}
	if err := Release(); err != nil {
		t.Fatalf("second release: %v", err)
	}
}
