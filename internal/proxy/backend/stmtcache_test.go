package backend

import "testing"

// The per-connection statement cache is an LRU bounded by MaxStmts: the
// least recently used statement without an owner is closed on the server
// when a new one comes in; owned statements are never evicted; a reset
// connection forgets them.
func TestStmtCacheLRU(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 1, MaxStmts: 3})
	c := mustGet(t, p, Variant{})
	defer p.Put(c)
	prep := func(key string) *Stmt {
		t.Helper()
		st, _, err := c.PrepareStmt(key, "SELECT "+key+" + ?")
		if err != nil {
			t.Fatalf("prepare %s: %v", key, err)
		}
		return st
	}
	a, b := prep("1"), prep("2")
	if again := prep("1"); again != a {
		t.Fatal("a key prepared twice got a second statement")
	}
	prep("3")
	// "2" is the least recently used: "4" evicts it.
	st, evicted, err := c.PrepareStmt("4", "SELECT 4 + ?")
	if err != nil || !evicted {
		t.Fatalf("prepare over the bound: evicted=%v err=%v", evicted, err)
	}
	if c.CachedStmt("2") != nil || c.CachedStmts() != 3 {
		t.Fatalf("after eviction: have %d statements, \"2\" kept: %v", c.CachedStmts(), c.CachedStmt("2") != nil)
	}
	// The evicted statement is closed on the server: executing its id fails.
	c.ResetSeq()
	if err := c.ResetStmt(b.ID); err == nil {
		t.Fatal("the evicted statement still exists on the server")
	}
	// An owned statement is never evicted, even when least recently used.
	a = c.CachedStmt("1")
	a.Owner = 7
	c.CachedStmt("3")
	c.CachedStmt("4")
	if _, evicted, err := c.PrepareStmt("5", "SELECT 5 + ?"); err != nil || !evicted {
		t.Fatalf("prepare 5: %v %v", evicted, err)
	}
	if c.CachedStmt("1") == nil || c.CachedStmt("3") != nil {
		t.Fatal("the owned statement was evicted instead of the least recently used free one")
	}
	if err := c.ResetStmt(st.ID); err != nil {
		t.Fatalf("COM_STMT_RESET of a kept statement: %v", err)
	}
	if err := c.reset(); err != nil {
		t.Fatal(err)
	}
	if c.CachedStmts() != 0 {
		t.Fatalf("a reset connection keeps %d statements", c.CachedStmts())
	}
}
