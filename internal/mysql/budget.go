package mysql

import (
	"sync"
	"time"
)

// Budget bounds the memory a process spends on client packets being
// assembled (the part of each connection's payload buffer above 64 KiB).
// A connection that needs more waits for others to give memory back, up to
// its BudgetWait. It is safe for concurrent use.
type Budget struct {
	mu    sync.Mutex
	limit int64
	used  int64
	// freed is closed (and replaced) whenever memory is given back.
	freed chan struct{}
}

// NewBudget returns a budget of limit bytes.
func NewBudget(limit int64) *Budget {
	return &Budget{limit: limit, freed: make(chan struct{})}
}

// SetLimit changes the limit (a reload); memory already in use stays
// charged.
func (b *Budget) SetLimit(limit int64) {
	b.mu.Lock()
	b.limit = limit
	ch := b.freed
	b.freed = make(chan struct{})
	b.mu.Unlock()
	close(ch)
}

// Limit is the budget in bytes.
func (b *Budget) Limit() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.limit
}

// Used is the memory charged now.
func (b *Budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// acquire charges n bytes, waiting up to wait for them to be free.
func (b *Budget) acquire(n int64, wait time.Duration) bool {
	var timer *time.Timer
	for {
		b.mu.Lock()
		if b.used+n <= b.limit {
			b.used += n
			b.mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
			return true
		}
		if n > b.limit {
			b.mu.Unlock()
			return false // it never fits
		}
		ch := b.freed
		b.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(wait)
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		}
	}
}

func (b *Budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	ch := b.freed
	b.freed = make(chan struct{})
	b.mu.Unlock()
	close(ch)
}
