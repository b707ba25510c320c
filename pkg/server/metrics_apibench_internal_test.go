package server

import (
	"testing"
	"time"
)

// TestBenchRoundPacedLatencyFromDueTime stalls the first of 20 operations
// paced at 1,000/s from one client for 60 ms: the 19 after it were due
// 1–19 ms after the start but could only be sent after the stall, and
// their latency counts from when they were due, so at least 41 ms each
// (a closed loop would report them as fast as the operation itself).
func TestBenchRoundPacedLatencyFromDueTime(t *testing.T) {
	stall := 60 * time.Millisecond
	op := func(_, n int) error {
		if n == 0 {
			time.Sleep(stall)
		}
		return nil
	}
	run := benchRound(1, 20, 1000, op)
	if run.Ops != 20 || run.Errors != 0 {
		t.Fatalf("paced round: %+v", run)
	}
	if run.P50Ms < 41 {
		t.Errorf("paced p50 %.2f ms: the stall behind the first operation was not counted", run.P50Ms)
	}
	closed := benchRound(1, 20, 0, op)
	if closed.MaxMs < 60 || closed.Duration < stall.Seconds() {
		t.Errorf("closed round: %+v", closed)
	}
}

// TestBenchRoundPacedSpreadsClients checks the schedule of a paced round
// of 4 clients at 2,000/s: each client sends its operations in order, and
// no operation is sent before it is due, so the round lasts at least as
// long as the schedule ((40-1)/2000 s).
func TestBenchRoundPacedSpreadsClients(t *testing.T) {
	var seen [4][]int
	start := time.Now()
	var sent [4][10]time.Time
	run := benchRound(4, 40, 2000, func(c, n int) error {
		seen[c] = append(seen[c], n)
		sent[c][n] = time.Now()
		return nil
	})
	if run.Ops != 40 || run.Duration < 39.0/2000 {
		t.Fatalf("paced round: %+v", run)
	}
	for c := range seen {
		for n, got := range seen[c] {
			if got != n {
				t.Fatalf("client %d sent %v", c, seen[c])
			}
			due := start.Add(time.Duration(float64(n*4+c) / 2000 * float64(time.Second)))
			if sent[c][n].Before(due) {
				t.Errorf("client %d operation %d sent %v before it was due", c, n, due.Sub(sent[c][n]))
			}
		}
	}
}
