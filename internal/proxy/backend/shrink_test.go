package backend

import (
	"testing"
)

// A backend connection that read a large packet does not keep the buffer
// while it idles in the pool.
func TestPutShrinksBuffers(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 1})
	c := mustGet(t, p, Variant{})
	if err := c.QueryRows("SELECT REPEAT('x', 4*1024*1024)", func([]string) {}); err != nil {
		t.Fatal(err)
	}
	if c.PayloadCap() < 4<<20 {
		t.Fatalf("payload buffer %d after a 4 MiB row: the test does not test", c.PayloadCap())
	}
	p.Put(c)
	c2 := mustGet(t, p, Variant{})
	defer p.Put(c2)
	if c2 != c {
		t.Fatal("another connection")
	}
	if n := c2.PayloadCap(); n > 64<<10 {
		t.Fatalf("pooled connection keeps a %d-byte buffer", n)
	}
}
