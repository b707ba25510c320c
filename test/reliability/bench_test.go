package reliability_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/auth"
)

// BenchmarkTokenLookupByPrefix is the statistical side of the constant-time
// check: it times Set.Lookup for wrong tokens that share 0, half or all
// but the last byte with a valid token, in interleaved batches, and
// reports each class's ns/lookup and Welch's t between the 0-byte and the
// longest-prefix class (|t| well under ~4 means no measurable dependence
// on the matching prefix). It asserts nothing: timing on a shared machine
// is a measurement, not a test.
//
//	go test -run '^$' -bench TokenLookupByPrefix ./test/reliability/
func BenchmarkTokenLookupByPrefix(b *testing.B) {
	valid := auth.DevAdminToken + strings.Repeat("k", 32)
	var accts []*auth.Account
	for i := 0; i < 20; i++ {
		accts = append(accts, auth.NewAccount("a"+string(rune('a'+i)), []string{"reader"}, nil, []string{"default"}, valid+string(rune('A'+i))))
	}
	set := &auth.Set{Accounts: accts}
	target := valid + "T" // one byte off every account's token
	wrong := func(prefix int) string {
		b := []byte(target)
		for i := prefix; i < len(b); i++ {
			b[i] ^= 0x5a
		}
		return string(b)
	}
	classes := []string{wrong(0), wrong(len(target) / 2), wrong(len(target) - 1)}
	const batch = 200
	samples := make([][]float64, len(classes))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for c, tok := range classes {
			t0 := time.Now()
			for j := 0; j < batch; j++ {
				if set.Lookup(tok) != nil {
					b.Fatal("wrong token accepted")
				}
			}
			samples[c] = append(samples[c], float64(time.Since(t0).Nanoseconds())/batch)
		}
	}
	b.StopTimer()
	mean := func(x []float64) (m, v float64) {
		for _, s := range x {
			m += s
		}
		m /= float64(len(x))
		for _, s := range x {
			v += (s - m) * (s - m)
		}
		if len(x) > 1 {
			v /= float64(len(x) - 1)
		}
		return m, v
	}
	m0, v0 := mean(samples[0])
	m1, _ := mean(samples[1])
	m2, v2 := mean(samples[2])
	n := float64(len(samples[0]))
	tstat := 0.0
	if den := math.Sqrt(v0/n + v2/n); den > 0 {
		tstat = (m2 - m0) / den
	}
	b.ReportMetric(m0, "ns/lookup_prefix0")
	b.ReportMetric(m1, "ns/lookup_prefixHalf")
	b.ReportMetric(m2, "ns/lookup_prefixAllButLast")
	b.ReportMetric(tstat, "welch_t")
}
