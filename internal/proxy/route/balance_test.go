package route

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

func TestNewBalancer(t *testing.T) {
	tests := []struct {
		kind    string
		weights []int
		wantErr bool
	}{
		{KindRandom, []int{1, 2}, false},
		{KindRoundRobin, []int{1, 2}, false},
		{KindRoundRobin, nil, false},
		{KindRandom, []int{0, 0}, false},
		{"", []int{1}, true},
		{"RoundRobin", []int{1}, true},
		{"least_conn", []int{1}, true},
		{KindRandom, []int{1, -1}, true},
		{KindRoundRobin, []int{-3}, true},
	}
	for _, tt := range tests {
		b, err := NewBalancer(tt.kind, tt.weights)
		if (err != nil) != tt.wantErr {
			t.Errorf("NewBalancer(%q, %v) error = %v, wantErr %v", tt.kind, tt.weights, err, tt.wantErr)
		}
		if err == nil && b == nil {
			t.Errorf("NewBalancer(%q, %v) returned nil balancer", tt.kind, tt.weights)
		}
	}
}

func TestNewBalancerCopiesWeights(t *testing.T) {
	w := []int{1, 0}
	for _, kind := range []string{KindRandom, KindRoundRobin} {
		b, _ := NewBalancer(kind, w)
		w[1] = 100
		for range 50 {
			if i, _ := b.Next(nil); i != 0 {
				t.Fatalf("%s: picked %d after caller changed its slice", kind, i)
			}
		}
		w[1] = 0
	}
}

func seq(b Balancer, n int, usable func(int) bool) []int {
	out := make([]int, 0, n)
	for range n {
		i, ok := b.Next(usable)
		if !ok {
			i = -1
		}
		out = append(out, i)
	}
	return out
}

func only(idx ...int) func(int) bool {
	return func(i int) bool { return slices.Contains(idx, i) }
}

func TestRoundRobinSequence(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		usable  func(int) bool
		want    []int
	}{
		{"equal weights is plain RR from 0", []int{1, 1, 1}, nil, []int{0, 1, 2, 0, 1, 2, 0}},
		{"single item", []int{4}, nil, []int{0, 0, 0}},
		{"nginx 5,1,1 is smooth", []int{5, 1, 1}, nil, []int{0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0}},
		{"2,1", []int{2, 1}, nil, []int{0, 1, 0, 0, 1, 0}},
		{"zero weight skipped", []int{1, 0, 1}, nil, []int{0, 2, 0, 2}},
		{"unusable skipped", []int{1, 1, 1}, only(0, 2), []int{0, 2, 0, 2}},
		{"only one usable", []int{3, 2, 1}, only(1), []int{1, 1, 1}},
		{"none usable", []int{1, 1}, only(), []int{-1, -1}},
		{"all zero", []int{0, 0}, nil, []int{-1, -1}},
		{"no items", nil, nil, []int{-1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewBalancer(KindRoundRobin, tt.weights)
			if err != nil {
				t.Fatal(err)
			}
			if got := seq(b, len(tt.want), tt.usable); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// counts makes n picks and returns how often each index was chosen.
func counts(t *testing.T, b Balancer, items, n int, usable func(int) bool) []int {
	t.Helper()
	c := make([]int, items)
	for range n {
		i, ok := b.Next(usable)
		if !ok {
			t.Fatal("no item chosen")
		}
		if usable != nil && !usable(i) {
			t.Fatalf("chose unusable item %d", i)
		}
		c[i]++
	}
	return c
}

func TestRoundRobinDistributionIsExact(t *testing.T) {
	tests := []struct {
		weights []int
		usable  func(int) bool
		want    []int // per sum-of-usable-weights picks
	}{
		{[]int{1, 1, 1}, nil, []int{1, 1, 1}},
		{[]int{5, 3, 2}, nil, []int{5, 3, 2}},
		{[]int{5, 3, 2, 0}, nil, []int{5, 3, 2, 0}},
		{[]int{5, 3, 2}, only(0, 2), []int{5, 0, 2}},
		{[]int{100, 1}, nil, []int{100, 1}},
	}
	for _, tt := range tests {
		b, _ := NewBalancer(KindRoundRobin, tt.weights)
		sum := 0
		for _, w := range tt.want {
			sum += w
		}
		const rounds = 7
		got := counts(t, b, len(tt.weights), rounds*sum, tt.usable)
		for i := range got {
			if got[i] != rounds*tt.want[i] {
				t.Errorf("weights %v: counts %v, want %v ×%d", tt.weights, got, tt.want, rounds)
				break
			}
		}
	}
}

// TestRoundRobinFairWhileSkipping checks that after an item is skipped for
// a while, the usable items still share picks by weight, and that the
// returning item does not get a burst.
func TestRoundRobinFairWhileSkipping(t *testing.T) {
	weights := []int{3, 2, 1}
	b, _ := NewBalancer(KindRoundRobin, weights)

	// Phase 1: item 0 is down. Items 1 and 2 share 2:1.
	got := counts(t, b, 3, 3000, only(1, 2))
	if got[0] != 0 || got[1] != 2000 || got[2] != 1000 {
		t.Fatalf("phase 1 counts %v, want [0 2000 1000]", got)
	}

	// Phase 2: all back. Over 6000 picks, within a few picks of 3:2:1,
	// and item 0 never gets more than its share within any window.
	all := seq(b, 6000, nil)
	c := make([]int, 3)
	for _, i := range all {
		c[i]++
	}
	for i, w := range weights {
		if d := c[i] - 1000*w; d < -3 || d > 3 {
			t.Fatalf("phase 2 counts %v, want ≈ [3000 2000 1000]", c)
		}
	}
	for start := 0; start+6 <= len(all); start++ {
		n0 := 0
		for _, i := range all[start : start+6] {
			if i == 0 {
				n0++
			}
		}
		if n0 > 4 {
			t.Fatalf("burst: item 0 chosen %d times in window %v at %d", n0, all[start:start+6], start)
		}
	}

	// Phase 3: health flaps every pick; the usable items still get their
	// weighted share of the picks they were eligible for.
	c = make([]int, 3)
	for k := range 60000 {
		u := only(0, 1, 2)
		if k%2 == 1 {
			u = only(1, 2)
		}
		i, _ := b.Next(u)
		c[i]++
	}
	// Even picks: 3:2:1 over 30000 → 15000/10000/5000; odd: 2:1 over 30000 → 0/20000/10000.
	want := []int{15000, 30000, 15000}
	for i := range c {
		if math.Abs(float64(c[i]-want[i])) > 0.02*float64(want[i]) {
			t.Fatalf("flapping counts %v, want ≈ %v", c, want)
		}
	}
}

func TestUsableCalledOncePerPositiveItem(t *testing.T) {
	for _, kind := range []string{KindRandom, KindRoundRobin} {
		b, _ := NewBalancer(kind, []int{1, 0, 2, 3})
		calls := make([]int, 4)
		for range 100 {
			clear(calls)
			b.Next(func(i int) bool { calls[i]++; return i != 3 })
			if !slices.Equal(calls, []int{1, 0, 1, 1}) {
				t.Fatalf("%s: usable calls %v, want [1 0 1 1]", kind, calls)
			}
		}
	}
}

func TestRandomDistribution(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		usable  func(int) bool
		want    []float64 // expected shares
	}{
		{"equal", []int{1, 1, 1, 1}, nil, []float64{.25, .25, .25, .25}},
		{"weighted", []int{5, 3, 2}, nil, []float64{.5, .3, .2}},
		{"zero weight", []int{1, 0, 3}, nil, []float64{.25, 0, .75}},
		{"filtered", []int{5, 3, 2}, only(1, 2), []float64{0, .6, .4}},
		{"one usable", []int{5, 3, 2}, only(2), []float64{0, 0, 1}},
		{"heavy skew", []int{99, 1}, nil, []float64{.99, .01}},
	}
	const n = 100000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Deterministic source: the result is reproducible.
			r := rand.New(rand.NewPCG(1, 2))
			check(t, newRandom(tt.weights, r.Int64N), tt.weights, tt.usable, tt.want, n, 0.01)
			// The real, concurrency-safe source, with a looser tolerance.
			b, _ := NewBalancer(KindRandom, tt.weights)
			check(t, b, tt.weights, tt.usable, tt.want, n, 0.02)
		})
	}
}

func check(t *testing.T, b Balancer, weights []int, usable func(int) bool, want []float64, n int, tol float64) {
	t.Helper()
	got := counts(t, b, len(weights), n, usable)
	for i := range got {
		share := float64(got[i]) / float64(n)
		if math.Abs(share-want[i]) > tol {
			t.Fatalf("counts %v: item %d share %.4f, want %.4f ± %.2f", got, i, share, want[i], tol)
		}
		if want[i] == 0 && got[i] != 0 {
			t.Fatalf("counts %v: item %d chosen but must not be", got, i)
		}
	}
}

func TestRandomNoneUsable(t *testing.T) {
	tests := []struct {
		weights []int
		usable  func(int) bool
	}{
		{nil, nil},
		{[]int{0, 0}, nil},
		{[]int{1, 2}, only()},
		{[]int{0, 2}, only(0)},
	}
	for _, tt := range tests {
		b, _ := NewBalancer(KindRandom, tt.weights)
		if i, ok := b.Next(tt.usable); ok || i != -1 {
			t.Errorf("weights %v: got (%d, %v), want (-1, false)", tt.weights, i, ok)
		}
	}
}

// TestRandomMatchesExactProbabilities checks the one-pass algorithm against
// a source that enumerates every random value: each item must win for
// exactly weight/sum of the outcomes.
func TestRandomMatchesExactProbabilities(t *testing.T) {
	weights := []int{2, 0, 3, 1}
	// For 3 usable items the pass draws intN(2), intN(5), intN(6);
	// enumerate all 2·5·6 = 60 outcomes.
	wins := make([]int, len(weights))
	for a := range int64(2) {
		for c := range int64(5) {
			for d := range int64(6) {
				draws := []int64{a, c, d}
				k := 0
				b := newRandom(weights, func(n int64) int64 { v := draws[k]; k++; return v })
				i, ok := b.Next(nil)
				if !ok {
					t.Fatal("nothing chosen")
				}
				wins[i]++
			}
		}
	}
	if want := []int{20, 0, 30, 10}; !slices.Equal(wins, want) { // 60 × w/6
		t.Fatalf("wins %v, want %v", wins, want)
	}
}

func TestConcurrent(t *testing.T) {
	weights := []int{3, 2, 1, 0}
	for _, kind := range []string{KindRandom, KindRoundRobin} {
		t.Run(kind, func(t *testing.T) {
			b, _ := NewBalancer(kind, weights)
			var down atomic.Bool
			usable := func(i int) bool { return i != 2 || !down.Load() }
			const goroutines, perG = 8, 6000
			var c [4]atomic.Int64
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for k := range perG {
						if g == 0 && k%100 == 0 {
							down.Store(!down.Load())
						}
						i, ok := b.Next(usable)
						if !ok {
							t.Error("nothing chosen")
							return
						}
						c[i].Add(1)
					}
				})
			}
			wg.Wait()
			total := int64(0)
			for i := range c {
				total += c[i].Load()
			}
			if total != goroutines*perG || c[3].Load() != 0 || c[0].Load() <= c[1].Load() {
				t.Fatalf("counts %d %d %d %d", c[0].Load(), c[1].Load(), c[2].Load(), c[3].Load())
			}
		})
	}
}

// TestRoundRobinConcurrentExact: concurrent picks are serialized, so with a
// constant usable set the counts are exactly proportional.
func TestRoundRobinConcurrentExact(t *testing.T) {
	b, _ := NewBalancer(KindRoundRobin, []int{3, 2, 1})
	const goroutines, perG = 8, 6000
	var c [3]atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range perG {
				i, _ := b.Next(nil)
				c[i].Add(1)
			}
		})
	}
	wg.Wait()
	if c[0].Load() != 24000 || c[1].Load() != 16000 || c[2].Load() != 8000 {
		t.Fatalf("counts %d %d %d, want 24000 16000 8000", c[0].Load(), c[1].Load(), c[2].Load())
	}
}

func TestNextDoesNotAllocate(t *testing.T) {
	up := [4]atomic.Bool{}
	for i := range up {
		up[i].Store(true)
	}
	usable := func(i int) bool { return up[i].Load() }
	for _, kind := range []string{KindRandom, KindRoundRobin} {
		b, _ := NewBalancer(kind, []int{3, 2, 1, 1})
		if n := testing.AllocsPerRun(1000, func() { b.Next(usable) }); n != 0 {
			t.Errorf("%s: %v allocs per Next", kind, n)
		}
	}
}

var benchUp [4]atomic.Bool

func benchUsable(i int) bool { return benchUp[i].Load() }

func benchmarkNext(b *testing.B, kind string, usable func(int) bool) {
	for i := range benchUp {
		benchUp[i].Store(i != 2)
	}
	bal, err := NewBalancer(kind, []int{3, 2, 1, 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bal.Next(usable)
		}
	})
}

func BenchmarkRoundRobin(b *testing.B)       { benchmarkNext(b, KindRoundRobin, nil) }
func BenchmarkRoundRobinUsable(b *testing.B) { benchmarkNext(b, KindRoundRobin, benchUsable) }
func BenchmarkRandom(b *testing.B)           { benchmarkNext(b, KindRandom, nil) }
func BenchmarkRandomUsable(b *testing.B)     { benchmarkNext(b, KindRandom, benchUsable) }

func BenchmarkRoundRobinSerial(b *testing.B) {
	bal, _ := NewBalancer(KindRoundRobin, []int{3, 2, 1, 1})
	b.ReportAllocs()
	for b.Loop() {
		bal.Next(nil)
	}
}
