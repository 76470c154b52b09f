package backend

import (
	"errors"
	"fmt"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// DefaultMaxStmts bounds the statements the proxy keeps prepared on one
// backend connection when PoolOptions.MaxStmts is 0. The server's own limit
// (max_prepared_stmt_count, 16382 by default) is for all its connections:
// a pool of 64 keeps at most half of it. When the server refuses a
// prepare for that limit anyway (1461), the connection closes the least
// recently used half of its statements and tries once more.
const DefaultMaxStmts = 128

// errCodeMaxPreparedStmts is ER_MAX_PREPARED_STMT_COUNT_REACHED.
const errCodeMaxPreparedStmts = 1461

// Stmt is a statement the proxy keeps prepared on one backend connection,
// found by a key (the statement's text and whatever else the caller needs
// to tell statements apart). Statements belong to the proxy, not to a
// client: any session that gets the connection from the pool executes them.
type Stmt struct {
	ID     uint32 // the server's statement id
	Params uint16 // parameter count
	// Types are the parameter types (2 bytes each) last bound on the
	// server for this statement: a COM_STMT_EXECUTE that sends none uses
	// them. Nil until an execute sent some.
	Types []byte
	// Owner, when not 0, is the client statement that holds server state
	// on it (an open cursor or data sent with COM_STMT_SEND_LONG_DATA):
	// it is never evicted and no other client statement uses it.
	Owner uint32

	key        string
	conn       *Conn // the connection whose cache holds it; nil once dropped
	prev, next *Stmt
}

// stmtCache is a connection's statements, least recently used last.
type stmtCache struct {
	m          map[string]*Stmt
	head, tail *Stmt
}

func (sc *stmtCache) unlink(st *Stmt) {
	if st.prev != nil {
		st.prev.next = st.next
	} else {
		sc.head = st.next
	}
	if st.next != nil {
		st.next.prev = st.prev
	} else {
		sc.tail = st.prev
	}
	st.prev, st.next = nil, nil
}

func (sc *stmtCache) pushFront(st *Stmt) {
	st.next = sc.head
	if sc.head != nil {
		sc.head.prev = st
	}
	sc.head = st
	if sc.tail == nil {
		sc.tail = st
	}
}

func (sc *stmtCache) reset() {
	for st := sc.head; st != nil; st = st.next {
		st.conn = nil
	}
	clear(sc.m)
	sc.head, sc.tail = nil, nil
}

// maxStmts is the cache bound of c's pool.
func (c *Conn) maxStmts() int {
	if c.Pool != nil && c.Pool.opts.MaxStmts > 0 {
		return c.Pool.opts.MaxStmts
	}
	return DefaultMaxStmts
}

// CachedStmt returns the statement kept on c under key (nil: none), and
// marks it recently used.
func (c *Conn) CachedStmt(key string) *Stmt {
	st := c.stmts.m[key]
	if st != nil && c.stmts.head != st {
		c.stmts.unlink(st)
		c.stmts.pushFront(st)
	}
	return st
}

// HasStmt reports whether st (a statement CachedStmt, AddStmt or
// PrepareStmt returned) is still kept on c, and marks it recently used: a
// caller that remembers the statement it last ran on c skips the lookup by
// key (hashing the text) when it gets c again.
func (c *Conn) HasStmt(st *Stmt) bool {
	if st.conn != c {
		return false
	}
	if c.stmts.head != st {
		c.stmts.unlink(st)
		c.stmts.pushFront(st)
	}
	return true
}

// CachedStmts reports how many statements c keeps prepared.
func (c *Conn) CachedStmts() int { return len(c.stmts.m) }

// AddStmt records statement id, prepared on c by the caller, under key.
// When key already has a statement, the new one is closed on the server
// and the existing one returned. When c keeps more than its bound, the
// least recently used statement without an owner is closed on the server
// (COM_STMT_CLOSE, which has no response); evicted reports it.
func (c *Conn) AddStmt(key string, id uint32, params uint16) (st *Stmt, evicted bool) {
	if old := c.CachedStmt(key); old != nil {
		if old.ID != id {
			c.CloseStmt(id)
		}
		return old, false
	}
	if c.stmts.m == nil {
		c.stmts.m = make(map[string]*Stmt)
	}
	if len(c.stmts.m) >= c.maxStmts() {
		for victim := c.stmts.tail; victim != nil; victim = victim.prev {
			if victim.Owner == 0 {
				c.dropStmt(victim)
				evicted = true
				break
			}
		}
	}
	st = &Stmt{ID: id, Params: params, key: key, conn: c}
	c.stmts.m[key] = st
	c.stmts.pushFront(st)
	return st, evicted
}

// DropStmt closes st on the server and forgets it.
func (c *Conn) DropStmt(st *Stmt) {
	if c.stmts.m[st.key] == st {
		c.dropStmt(st)
	}
}

func (c *Conn) dropStmt(st *Stmt) {
	c.CloseStmt(st.ID)
	delete(c.stmts.m, st.key)
	c.stmts.unlink(st)
	st.conn = nil
}

// PrepareStmt prepares sql on c and keeps it under key (see AddStmt). An
// ERR from the server is returned as *mysql.Error and c stays usable; other
// errors mark c broken.
func (c *Conn) PrepareStmt(key, sql string) (st *Stmt, evicted bool, err error) {
	id, params, err := c.Prepare(sql)
	var me *mysql.Error
	if err != nil && errors.As(err, &me) && me.Code == errCodeMaxPreparedStmts && c.evictHalf() {
		// The server's limit is for all connections: give back some of
		// this one's and try again.
		evicted = true
		id, params, err = c.Prepare(sql)
	}
	if err != nil {
		return nil, evicted, err
	}
	st, ev := c.AddStmt(key, id, params)
	return st, evicted || ev, nil
}

// evictHalf closes the least recently used half (at least one) of c's
// statements that have no owner; it reports whether it closed any.
func (c *Conn) evictHalf() bool {
	n := (len(c.stmts.m) + 1) / 2
	closed := 0
	for victim := c.stmts.tail; victim != nil && closed < n; {
		prev := victim.prev
		if victim.Owner == 0 {
			c.dropStmt(victim)
			closed++
		}
		victim = prev
	}
	return closed > 0
}

// ResetStmt runs COM_STMT_RESET for a server statement id (closing its
// cursor, dropping its long data) and reads the answer.
func (c *Conn) ResetStmt(id uint32) error {
	if err := c.writeCommand(mysql.ComStmtReset, string([]byte{byte(id), byte(id >> 8), byte(id >> 16), byte(id >> 24)})); err != nil {
		return err
	}
	p, err := c.ReadPacket()
	if err != nil {
		return c.fail(err)
	}
	switch {
	case len(p) > 0 && p[0] == mysql.ERRHeader:
		return mysql.ParseErr(p)
	case len(p) == 0 || p[0] != mysql.OKHeader:
		return c.fail(fmt.Errorf("bad COM_STMT_RESET response"))
	}
	return nil
}
