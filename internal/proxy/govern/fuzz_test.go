package govern

import (
	"context"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// FuzzChain compiles arbitrary rules and runs arbitrary statements: no
// panics, and no slot is left held after Finish.
func FuzzChain(f *testing.F) {
	f.Add("drop", "report", "shop.*", "read", "select * from report", "shop", "t", uint8(1), uint8(3))
	f.Add("(", "", "*", "", "", "", "", uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, cb, cc, table, kind, sql, schema, tname string, k, cmd uint8) {
		cfg := &proxyconfig.Governance{
			CircuitBreak:       []proxyconfig.CircuitBreak{{MatchSpec: regexSpec(cb), DryRun: k%2 == 0}},
			ConcurrencyControl: []proxyconfig.ConcurrencyControl{{MatchSpec: regexSpec(cc), MaxConcurrency: int(k % 3)}},
			Access:             &proxyconfig.Access{Users: []proxyconfig.AccessUser{{User: "u", Tables: []string{table}, Kinds: []string{kind}}}},
		}
		st := NewState("d", nil, StateOptions{Logger: quiet})
		defer st.Close()
		c, err := Compile(cfg, st, Options{})
		if err != nil {
			return
		}
		defer c.Close()
		facts := &sqlparse.Facts{Kind: sqlparse.Kind(k % 24), Class: sqlparse.Class(k % 5), Tables: []sqlparse.Table{{Schema: schema, Name: tname}}}
		r := &Request{User: "u", Schema: schema, SQL: sql, Facts: facts, Command: []byte{mysql.ComQuery, mysql.ComInitDB, mysql.ComStmtExecute, mysql.ComPing}[cmd%4]}
		v, rej := c.Check(context.Background(), r)
		if rej != nil && rej.Err == nil {
			t.Fatal("rejection without error")
		}
		c.Finish(r, &v, &Outcome{})
		if n := st.Concurrency().InFlight("concurrency_control[0]"); n != 0 {
			t.Fatalf("slot held: %d", n)
		}
	})
}
