package proxy

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// killBackendOf kills, from a direct connection, the backend thread that
// serves the proxied session c (its pseudo_thread_id is the thread id).
func killBackendOf(t *testing.T, m *testutil.MariaDB, c *sql.Conn) {
	t.Helper()
	var tid int64
	if err := c.QueryRowContext(context.Background(), "SELECT @@pseudo_thread_id").Scan(&tid); err != nil {
		t.Fatalf("backend thread id: %v", err)
	}
	m.Exec(t, fmt.Sprintf("KILL %d", tid))
}

// A pinned session whose backend connection dies inside a transaction must
// not go on in autocommit on a new connection: the client gets 2013 and its
// connection is closed, as a server would close it, so nothing of the
// transaction commits behind its back.
func TestLostTransactionIsNeverHidden(t *testing.T) {
	m := testutil.StartMariaDB(t)
	direct := m.Open(t, "test")
	if _, err := direct.Exec("CREATE TABLE lost_tx (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	tp := startProxy(t, baseConfig(m.Addr))
	db := openDB(t, tp.dsn(""))
	c := sqlConn(t, db)
	ctx := context.Background()
	for _, q := range []string{"BEGIN", "INSERT INTO lost_tx VALUES (1)"} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	killBackendOf(t, m, c)

	_, err := c.ExecContext(ctx, "INSERT INTO lost_tx VALUES (2)")
	if mysqlErrCode(err) != 2013 {
		t.Fatalf("statement after the backend died: want ERR 2013, got %v", err)
	}
	// The session is gone: the next statement on it cannot run.
	_, err = c.ExecContext(ctx, "INSERT INTO lost_tx VALUES (3)")
	if err == nil {
		t.Fatal("a statement after a lost transaction ran (in autocommit on a new backend connection)")
	}
	if !errors.Is(err, gomysql.ErrInvalidConn) && !errors.Is(err, driver.ErrBadConn) {
		t.Fatalf("after a lost transaction the connection must be closed, got %v", err)
	}
	var n int
	if err := direct.QueryRow("SELECT COUNT(*) FROM lost_tx").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d row(s) of the lost transaction committed", n)
	}
	// Other sessions and new clients are not affected.
	if v := queryString(t, db, "SELECT 1"); v != "1" {
		t.Fatalf("new session: %q", v)
	}
}

// A session that only holds prepared statements gets them back: after its
// backend connection dies, the next execute re-prepares transparently.
func TestPreparedStatementsSurviveLostBackend(t *testing.T) {
	m := testutil.StartMariaDB(t)
	tp := startProxy(t, baseConfig(m.Addr))
	db := openDB(t, tp.dsn(""))
	c := sqlConn(t, db)
	ctx := context.Background()
	st, err := c.PrepareContext(ctx, "SELECT ? + 1")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var v int
	if err := st.QueryRowContext(ctx, 1).Scan(&v); err != nil || v != 2 {
		t.Fatalf("execute: %d, %v", v, err)
	}
	killBackendOf(t, m, c)
	// The first statement after the loss may see the dead connection
	// (2013); from then on the statement works again.
	err = st.QueryRowContext(ctx, 2).Scan(&v)
	if err != nil && mysqlErrCode(err) != 2013 {
		t.Fatalf("first execute after the loss: want a result or 2013, got %v", err)
	}
	for i := 3; i < 6; i++ {
		if err := st.QueryRowContext(ctx, i).Scan(&v); err != nil || v != i+1 {
			t.Fatalf("execute %d after the loss: %d, %v", i, v, err)
		}
	}
}
