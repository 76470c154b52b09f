package backend

import (
	"strconv"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/testutil"
)

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

// A server at max_prepared_stmt_count (its limit for all connections)
// refuses a prepare with 1461: the connection closes the least recently
// used half of its statements and prepares once more.
func TestStmtCacheServerLimit(t *testing.T) {
	m := testutil.StartMariaDB(t)
	m.Exec(t, "SET GLOBAL max_prepared_stmt_count = 4")
	ep := testEndpoint(t)
	ep.Addr = m.Addr
	p := NewPool("test", ep, PoolOptions{MaxOpen: 1}, quietLogger)
	t.Cleanup(p.Close)
	c := mustGet(t, p, Variant{})
	defer p.Put(c)
	for i := 1; i <= 4; i++ {
		if _, _, err := c.PrepareStmt(strconv.Itoa(i), "SELECT "+strconv.Itoa(i)+" + ?"); err != nil {
			t.Fatalf("prepare %d: %v", i, err)
		}
	}
	st, evicted, err := c.PrepareStmt("5", "SELECT 5 + ?")
	if err != nil || !evicted || st == nil {
		t.Fatalf("prepare over the server's limit: evicted=%v err=%v", evicted, err)
	}
	if c.CachedStmts() != 3 || c.CachedStmt("1") != nil || c.CachedStmt("2") != nil || c.CachedStmt("4") == nil {
		t.Fatalf("after the server's limit: %d statements kept", c.CachedStmts())
	}
}

// HasStmt tells whether a statement a caller remembers is still kept on a
// connection: false on another connection, after eviction, DropStmt or a
// reset; true marks it recently used like CachedStmt.
func TestStmtCacheHasStmt(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 2, MaxStmts: 2})
	c := mustGet(t, p, Variant{})
	defer p.Put(c)
	other := mustGet(t, p, Variant{})
	defer p.Put(other)
	prep := func(key string) *Stmt {
		t.Helper()
		st, _, err := c.PrepareStmt(key, "SELECT "+key+" + ?")
		if err != nil {
			t.Fatalf("prepare %s: %v", key, err)
		}
		return st
	}
	a, b := prep("1"), prep("2")
	if !c.HasStmt(a) || !c.HasStmt(b) || other.HasStmt(a) {
		t.Fatal("HasStmt: kept statements not found, or found on another connection")
	}
	// a was used last: b is the least recently used and "3" evicts it.
	c.HasStmt(a)
	prep("3")
	if c.HasStmt(b) || !c.HasStmt(a) {
		t.Fatalf("after eviction: has b %v, has a %v", c.HasStmt(b), c.HasStmt(a))
	}
	c.DropStmt(a)
	if c.HasStmt(a) {
		t.Fatal("a dropped statement is still kept")
	}
	d := prep("4")
	if err := c.reset(); err != nil {
		t.Fatal(err)
	}
	if c.HasStmt(d) {
		t.Fatal("a reset connection still keeps a statement")
	}
}
