package proxy

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// volatileVars differ between any two connections, or are the proxy's own
// session trackers (which it needs on every backend connection).
var volatileVars = map[string]bool{
	"PSEUDO_THREAD_ID": true, "TIMESTAMP": true, "RAND_SEED1": true, "RAND_SEED2": true,
	"LAST_INSERT_ID": true, "INSERT_ID": true, "IDENTITY": true, "WARNING_COUNT": true,
	"ERROR_COUNT": true, "LAST_GTID": true, "IN_TRANSACTION": true, "GTID_SEQ_NO": true,
	"SESSION_TRACK_SYSTEM_VARIABLES": true, "SESSION_TRACK_SCHEMA": true,
	"SESSION_TRACK_STATE_CHANGE": true, "SESSION_TRACK_TRANSACTION_INFO": true,
	"SERVER_ID": false,
}

// sessionVars is every session variable of a connection, and its schema.
func sessionVars(t *testing.T, c *sql.Conn) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := c.QueryContext(ctx, "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.SESSION_VARIABLES "+
		"UNION ALL SELECT 'DATABASE()', DATABASE()")
	if err != nil {
		t.Fatalf("read session variables: %v", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name string
		var v sql.NullString
		if err := rows.Scan(&name, &v); err != nil {
			t.Fatal(err)
		}
		if !volatileVars[name] {
			out[name] = v.String
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func diffVars(got, want map[string]string) string {
	var d []string
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			d = append(d, fmt.Sprintf("%s: %q, direct %q", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("%s: %q, direct has none", k, g))
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n  ")
}

// setStatements are the session changes the randomized test draws from:
// every way a client sets state (forms the server tracks and forms it does
// not), with values drawn by rnd.
var setStatements = []func(r *rand.Rand) string{
	func(r *rand.Rand) string { return `SET sql_mode = '` + sqlModes(r) + `'` },
	func(r *rand.Rand) string { return `SET @@SQL_MODE="` + sqlModes(r) + `"` },
	func(r *rand.Rand) string { return `SET @@session.sql_mode = '` + sqlModes(r) + `'` },
	func(r *rand.Rand) string { return `SET SESSION sql_mode = '` + sqlModes(r) + `'` },
	func(r *rand.Rand) string { return `SET @@SQL_MODE="ALLOW_INVALID_DATES"; SET @@SQL_MODE=""` },
	func(r *rand.Rand) string { return `SET @@SQL_MODE="ANSI"; SELECT 1` },
	func(r *rand.Rand) string { return fmt.Sprintf(`SET time_zone = '+0%d:00'`, r.IntN(10)) },
	func(r *rand.Rand) string { return fmt.Sprintf(`SET @@time_zone = '-0%d:00'`, r.IntN(10)) },
	func(r *rand.Rand) string {
		return []string{"SET NAMES latin1", "SET NAMES utf8mb4", "SET NAMES utf8mb3", "SET NAMES utf8mb4 COLLATE utf8mb4_bin",
			"SET CHARACTER SET latin1", "SET CHARACTER SET utf8mb4", "SET character_set_results = NULL"}[r.IntN(7)]
	},
	func(r *rand.Rand) string {
		return "SET SESSION TRANSACTION ISOLATION LEVEL " + isolation(r)
	},
	func(r *rand.Rand) string { return "SET TRANSACTION ISOLATION LEVEL " + isolation(r) },
	func(r *rand.Rand) string { return fmt.Sprintf("SET autocommit = %d", r.IntN(2)) },
	func(r *rand.Rand) string {
		return []string{"USE test", "USE mysql", "USE information_schema"}[r.IntN(3)]
	},
	func(r *rand.Rand) string { return fmt.Sprintf("SET max_sort_length = %d", 1024+r.IntN(1000)) },
	func(r *rand.Rand) string { return fmt.Sprintf("SET @@group_concat_max_len = %d", 1024+r.IntN(1000)) },
	func(r *rand.Rand) string {
		return fmt.Sprintf("SET div_precision_increment = %d, @@session.net_write_timeout = %d", r.IntN(10), 30+r.IntN(30))
	},
	func(r *rand.Rand) string { return "SET STATEMENT sql_mode='ANSI' FOR SELECT 1" },
	func(r *rand.Rand) string { return "CALL test.pisa_leak_proc()" },
	func(r *rand.Rand) string { return "PREPARED:SET @@sql_mode = ?:" + sqlModes(r) },
	func(r *rand.Rand) string { return "PREPARED:SET time_zone = ?:+0" + strconv.Itoa(r.IntN(10)) + ":00" },
	func(r *rand.Rand) string { return "SET @pisa_user_var = 1" },
}

func sqlModes(r *rand.Rand) string {
	all := []string{"ANSI_QUOTES", "PIPES_AS_CONCAT", "NO_BACKSLASH_ESCAPES", "ALLOW_INVALID_DATES",
		"STRICT_TRANS_TABLES", "ONLY_FULL_GROUP_BY", "NO_ZERO_DATE", "IGNORE_SPACE"}
	var pick []string
	for _, m := range all {
		if r.IntN(3) == 0 {
			pick = append(pick, m)
		}
	}
	return strings.Join(pick, ",")
}

func isolation(r *rand.Rand) string {
	return []string{"READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"}[r.IntN(4)]
}

// run executes one drawn statement on c ("PREPARED:text:arg" goes through a
// server-side prepared statement).
func runDrawn(ctx context.Context, c *sql.Conn, q string) error {
	if rest, ok := strings.CutPrefix(q, "PREPARED:"); ok {
		text, arg, _ := strings.Cut(rest, ":")
		_, err := c.ExecContext(ctx, text, arg)
		return err
	}
	rows, err := c.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	for {
		for rows.Next() {
		}
		if !rows.NextResultSet() {
			break
		}
	}
	return rows.Close()
}

// Session state never leaks from one client to the next, and a client keeps
// exactly the state it set, whatever form its SETs take (tracked by the
// server or not, several in one COM_QUERY, in a procedure, through prepared
// statements): after a random sequence of SETs a client's every session
// variable equals that of a direct connection that ran the same sequence,
// and a fresh client's equal a fresh direct connection's. Pools of one and
// of several backend connections. PISA_TEST_SEED reproduces a run.
func TestSessionStateNeverLeaks(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PISA_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (PISA_TEST_SEED reproduces it)", seed)
	m := testutil.StartMariaDB(t)
	direct := openDB(t, m.DSN("test")+"?multiStatements=true")
	direct.SetMaxIdleConns(0)
	if _, err := direct.Exec("CREATE PROCEDURE test.pisa_leak_proc() BEGIN SET sql_mode = 'ANSI'; SET @@time_zone = '+05:00'; END"); err != nil {
		t.Fatal(err)
	}
	for _, poolSize := range []int{1, 4} {
		t.Run(fmt.Sprintf("pool=%d", poolSize), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, uint64(poolSize)))
			cfg := baseConfig(m.Addr)
			cfg.Proxy.Config[0].Pool.MaxOpen = poolSize
			tp := startProxy(t, cfg)
			proxied := openDB(t, tp.dsn("multiStatements=true"))
			proxied.SetMaxIdleConns(0)
			ctx := context.Background()
			for trial := 0; trial < 25; trial++ {
				a, d := sqlConn(t, proxied), sqlConn(t, direct)
				var seq []string
				for n := 1 + r.IntN(4); n > 0; n-- {
					q := setStatements[r.IntN(len(setStatements))](r)
					seq = append(seq, q)
					errA, errD := runDrawn(ctx, a, q), runDrawn(ctx, d, q)
					if (errA == nil) != (errD == nil) {
						t.Fatalf("trial %d %q: through the proxy %v, direct %v", trial, seq, errA, errD)
					}
					if poolSize > 1 && r.IntN(2) == 0 {
						// Another client takes whatever connection is free.
						if _, err := proxied.ExecContext(ctx, "SELECT 1"); err != nil {
							t.Fatalf("trial %d other client: %v", trial, err)
						}
					}
				}
				if d := diffVars(sessionVars(t, a), sessionVars(t, d)); d != "" {
					t.Fatalf("trial %d: after %q the client's session differs from a direct one's:\n  %s", trial, seq, d)
				}
				a.Close()
				d.Close()
				b, fresh := sqlConn(t, proxied), sqlConn(t, direct)
				if d := diffVars(sessionVars(t, b), sessionVars(t, fresh)); d != "" {
					t.Fatalf("trial %d: after another client ran %q, a new client's session differs from a fresh direct one's:\n  %s", trial, seq, d)
				}
				b.Close()
				fresh.Close()
			}
		})
	}
}
