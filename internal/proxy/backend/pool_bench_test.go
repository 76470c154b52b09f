package backend

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// BenchmarkPoolContended measures the pool's handoff alone: 64 goroutines
// take a connection and give it back through a pool of 4, so nearly every
// Get waits and every Put serves a waiter (sysbench --threads=256 through
// max_open 32 in small). No statement runs.
func BenchmarkPoolContended(b *testing.B) {
	ep := Endpoint{Name: "ds001", Addr: testutil.MariaDBAddr(b), User: "root", DB: "test", Role: "readwrite", Weight: 1}
	p := NewPool("test", ep, PoolOptions{MaxOpen: 4, WaitTimeout: 10 * time.Second}, quietLogger)
	defer p.Close()
	// Dial the connections before timing.
	var warm []*Conn
	for range 4 {
		c, err := p.Get(context.Background(), Variant{})
		if err != nil {
			b.Fatal(err)
		}
		warm = append(warm, c)
	}
	for _, c := range warm {
		p.Put(c)
	}
	const workers = 64
	per := b.N/workers + 1
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	b.ReportAllocs()
	b.ResetTimer()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				c, err := p.Get(context.Background(), Variant{})
				if err != nil {
					errs <- err
					return
				}
				p.Put(c)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	if st := p.Stats(); st.Open != 4 || st.Timeouts != 0 {
		b.Fatalf("after the run: %+v", st)
	}
}
