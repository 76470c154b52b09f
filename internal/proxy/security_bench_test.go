package proxy

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/metrics"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// stmtRunner runs a statement: prepared once (binary protocol) or as text
// with the arguments interpolated by the client.
type stmtRunner interface {
	QueryRow(args ...any) *sql.Row
	Exec(args ...any) (sql.Result, error)
}

type textStmt struct {
	db *sql.DB
	q  string
}

func (t textStmt) QueryRow(args ...any) *sql.Row        { return t.db.QueryRow(t.q, args...) }
func (t textStmt) Exec(args ...any) (sql.Result, error) { return t.db.Exec(t.q, args...) }

func prepare(b *testing.B, db *sql.DB, q string) stmtRunner {
	if benchText {
		return textStmt{db, q}
	}
	st, err := db.Prepare(q)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

var benchText bool

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSecurityClaim: point selects by an (encrypted) email and
// inserts, on a plain table and on the same table encrypted (cipher and
// assisted columns), through one proxy, with prepared statements (binary
// protocol, prepared once) and with the text protocol. cpu-µs/op is this process's CPU
// time per statement: the Go client and the proxy (MariaDB runs apart);
// the difference between plain and encrypted is the proxy's cost of the
// security claim.
//
//	go test -run XXX -bench SecurityClaim -benchtime 3000x ./internal/proxy/
func BenchmarkSecurityClaim(b *testing.B) {
	addr := testutil.MariaDBAddr(b)
	setup := testutil.Open(b, testutil.MariaDBDSN(b))
	for _, q := range []string{
		"DROP TABLE IF EXISTS bench_sec_plain", "DROP TABLE IF EXISTS bench_sec_enc",
		"CREATE TABLE bench_sec_plain (id INT PRIMARY KEY, email VARCHAR(64) COLLATE utf8mb4_bin, c VARCHAR(120), UNIQUE KEY (email))",
		"CREATE TABLE bench_sec_enc (id INT PRIMARY KEY, email_cipher VARBINARY(200), email_assisted BINARY(32), c VARCHAR(120), UNIQUE KEY (email_assisted))",
	} {
		if _, err := setup.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() {
		setup.Exec("DROP TABLE IF EXISTS bench_sec_plain")
		setup.Exec("DROP TABLE IF EXISTS bench_sec_enc")
	})
	cfg := baseConfig(addr)
	claim := secClaim()
	claim.Tables = []proxyconfig.EncryptedTable{{Name: "bench_sec_enc", Columns: []proxyconfig.EncryptedColumn{
		{Name: "email", CipherColumn: "email_cipher", AssistedColumn: "email_assisted"}}}}
	cfg.Proxy.Config[0].SecurityClaim = claim
	cfg.ApplyDefaults()
	p := New(slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.NewProxy(nil))
	if err := p.Apply(cfg); err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	proxyAddr := p.Listener("test").Addr().String()
	const rows = 1000
	for _, proto := range []struct{ name, params string }{{"prepared", ""}, {"text", "interpolateParams=true"}} {
		benchText = proto.name == "text"
		db, err := sql.Open("mysql", "proxy:proxypass@tcp("+proxyAddr+")/test?"+proto.params)
		if err != nil {
			b.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		for _, table := range []string{"bench_sec_plain", "bench_sec_enc"} {
			if _, err := db.Exec("DELETE FROM " + table); err != nil {
				b.Fatal(err)
			}
			for i := 1; i <= rows; i++ {
				if _, err := db.Exec("INSERT INTO "+table+" (id, email, c) VALUES (?, ?, 'x')", i, fmt.Sprintf("user%d@example.com", i)); err != nil {
					b.Fatal(err)
				}
			}
			kind := "plain"
			if table == "bench_sec_enc" {
				kind = "encrypted"
			}
			b.Run("select/"+proto.name+"/"+kind, func(b *testing.B) {
				var id int
				var email string
				sel := prepare(b, db, "SELECT id, email FROM "+table+" WHERE email = ?")
				start := cpuNow()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					want := fmt.Sprintf("user%d@example.com", i%rows+1)
					if err := sel.QueryRow(want).Scan(&id, &email); err != nil {
						b.Fatal(err)
					}
					if email != want {
						b.Fatalf("got %q, want %q", email, want)
					}
				}
				b.ReportMetric(float64((cpuNow()-start).Microseconds())/float64(b.N), "cpu-µs/op")
			})
			b.Run("insert/"+proto.name+"/"+kind, func(b *testing.B) {
				if _, err := db.Exec("DELETE FROM "+table+" WHERE id > ?", rows); err != nil {
					b.Fatal(err)
				}
				ins := prepare(b, db, "INSERT INTO "+table+" (id, email, c) VALUES (?, ?, 'x')")
				start := cpuNow()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					id := rows + 1 + i
					if _, err := ins.Exec(id, fmt.Sprintf("new%d@example.com", id)); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64((cpuNow()-start).Microseconds())/float64(b.N), "cpu-µs/op")
			})
		}
		db.Close()
	}
}
