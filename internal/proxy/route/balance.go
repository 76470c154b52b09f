// Package route chooses backends: load balancers, read/write splitting and
// sharding.
package route

import (
	"fmt"
	"math/rand/v2"
	"sync"
)

// Balancer kinds, as written in the config (load_balance / balance_type,
// TrafficStrategy algorithmName).
const (
	KindRandom     = "random"     // weighted random
	KindRoundRobin = "roundrobin" // smooth weighted round robin
)

// Balancer picks one of a fixed list of weighted items (backend endpoints).
//
// Next returns the index of the chosen item among those for which
// usable(i) is true (a nil usable means every item), and false if no item
// with a positive weight is usable. Items with weight 0 are never chosen
// and usable is not called for them. usable is called at most once per
// item, synchronously, possibly while the balancer holds an internal lock:
// it must be fast (typically an atomic health flag load) and must not call
// the balancer.
//
// Implementations are safe for concurrent use and do not allocate.
type Balancer interface {
	Next(usable func(i int) bool) (int, bool)
}

// NewBalancer returns a balancer of the given kind over len(weights) items;
// weights[i] is the weight of item i. Weights must not be negative.
func NewBalancer(kind string, weights []int) (Balancer, error) {
	for i, w := range weights {
		if w < 0 {
			return nil, fmt.Errorf("route: item %d has negative weight %d", i, w)
		}
	}
	switch kind {
	case KindRandom:
		return newRandom(weights, rand.Int64N), nil
	case KindRoundRobin:
		return newRoundRobin(weights), nil
	default:
		return nil, fmt.Errorf("route: unknown load balance kind %q (want %q or %q)", kind, KindRandom, KindRoundRobin)
	}
}

// randomBalancer is weighted random. It makes one pass over the items,
// keeping the chosen one with probability weight/(sum of usable weights
// seen so far) (weighted reservoir sampling), so usable is called once per
// item and no lock is needed.
type randomBalancer struct {
	weights []int64
	intN    func(n int64) int64 // uniform in [0, n); rand.Int64N is concurrency-safe
}

func newRandom(weights []int, intN func(int64) int64) *randomBalancer {
	b := &randomBalancer{weights: make([]int64, len(weights)), intN: intN}
	for i, w := range weights {
		b.weights[i] = int64(w)
	}
	return b
}

func (b *randomBalancer) Next(usable func(i int) bool) (int, bool) {
	chosen, total := -1, int64(0)
	for i, w := range b.weights {
		if w == 0 || (usable != nil && !usable(i)) {
			continue
		}
		total += w
		if b.intN(total) < w {
			chosen = i
		}
	}
	return chosen, chosen >= 0
}

// roundRobinBalancer is smooth weighted round robin, as in nginx: on each
// pick every usable item's current weight grows by its weight, the item
// with the largest current weight is chosen (the lowest index on ties) and
// its current weight drops by the sum of the usable weights. Over any run
// of sum-of-weights picks each item is chosen weight times, spread out
// rather than in bursts; with all weights 1 it is plain round robin
// starting at item 0. Unusable items are left out of the step, so the
// usable ones share the picks in proportion to their weights.
type roundRobinBalancer struct {
	weights []int64

	mu      sync.Mutex
	current []int64
}

func newRoundRobin(weights []int) *roundRobinBalancer {
	b := &roundRobinBalancer{weights: make([]int64, len(weights)), current: make([]int64, len(weights))}
	for i, w := range weights {
		b.weights[i] = int64(w)
	}
	return b
}

func (b *roundRobinBalancer) Next(usable func(i int) bool) (int, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	best, total := -1, int64(0)
	for i, w := range b.weights {
		if w == 0 || (usable != nil && !usable(i)) {
			continue
		}
		b.current[i] += w
		total += w
		if best < 0 || b.current[i] > b.current[best] {
			best = i
		}
	}
	if best < 0 {
		return -1, false
	}
	b.current[best] -= total
	return best, true
}
