// Go's x/sync/singleflight in the shapes of ../benches/group_scaling.rs, for
// issue 14's comparison: Do on distinct keys from 1, 2 and 4 goroutines at
// once, and Do from one goroutine on the same key or a fresh one each call.
// See README.md beside this file for how to run it.
package singleflight_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/singleflight"
)

// keysPerCaller is how many keys each caller rotates through. A key leaves
// the group when its call returns, so each call is a flight of its own with
// nobody joining; precomputing the strings keeps their formatting out of
// the figure (the Rust rows use u64 keys, which cost nothing to make).
const keysPerCaller = 1 << 12

// keys returns caller me's keys, distinct from every other caller's.
func keys(me int) []string {
	ks := make([]string, keysPerCaller)
	for i := range ks {
		ks[i] = fmt.Sprintf("caller-%d/key-%d", me, i)
	}
	return ks
}

// value is what every call returns: a value already in an interface, so
// that returning it allocates nothing.
var value interface{} = "value"

func work() (interface{}, error) { return value, nil }

var sink interface{}

// distinct runs b.N calls of g.Do in total, split over `callers`
// goroutines on keys of their own, all started together: ns/op is the
// wall time over all calls, per call all callers together, as the Rust
// rows' per_call; calls/s is the total throughput.
func distinct(b *testing.B, callers int) {
	var g singleflight.Group
	perCaller := make([][]string, callers)
	for me := range perCaller {
		perCaller[me] = keys(me)
	}
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(callers)
	done.Add(callers)
	for me := 0; me < callers; me++ {
		n := b.N / callers
		if me == 0 {
			n += b.N % callers
		}
		go func(ks []string, n int) {
			defer done.Done()
			var v interface{}
			ready.Done()
			<-start
			for i := 0; i < n; i++ {
				v, _, _ = g.Do(ks[i%keysPerCaller], work)
			}
			sink = v
		}(perCaller[me], n)
	}
	ready.Wait()
	b.ResetTimer()
	// testing.B.Elapsed is Go 1.20; Debian bookworm's golang-go is 1.19.
	began := time.Now()
	close(start)
	done.Wait()
	elapsed := time.Since(began)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
}

func BenchmarkDo(b *testing.B) {
	for _, callers := range []int{1, 2, 4} {
		callers := callers
		b.Run(fmt.Sprintf("distinct/goroutines_%d", callers), func(b *testing.B) {
			b.ReportAllocs()
			distinct(b, callers)
		})
	}

	b.Run("uncontended/fresh_key", func(b *testing.B) {
		b.ReportAllocs()
		var g singleflight.Group
		ks := keys(0)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sink, _, _ = g.Do(ks[i%keysPerCaller], work)
		}
	})

	b.Run("uncontended/same_key", func(b *testing.B) {
		b.ReportAllocs()
		var g singleflight.Group
		for i := 0; i < b.N; i++ {
			sink, _, _ = g.Do("42", work)
		}
	})
}
