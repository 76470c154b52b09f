package access

import (
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

func FuzzCheck(f *testing.F) {
	f.Add("shop", "shop.orders", "read", "use shop", "shop", "orders", uint8(1))
	f.Add("`a``b`", "`x`.*", "ddl", "/* */ USE `a``b`", "", "t", uint8(16))
	f.Add("", "*", "", "#\n", "x", "", uint8(13))
	f.Fuzz(func(t *testing.T, schema, table, kind, sql, tschema, tname string, k uint8) {
		p, err := Compile(&proxyconfig.Access{Users: []proxyconfig.AccessUser{{User: "u", Schemas: []string{schema}, Tables: []string{table}, Kinds: []string{kind}, MaxRows: 5}}}, Options{})
		if err != nil {
			return
		}
		facts := &sqlparse.Facts{Kind: sqlparse.Kind(k % 24), Class: sqlparse.Class(k % 5), Tables: []sqlparse.Table{{Schema: tschema, Name: tname}}}
		for _, cmd := range []byte{mysql.ComQuery, mysql.ComInitDB, mysql.ComFieldList} {
			_, d := p.Check("u", schema, "h:1", cmd, sql, facts)
			if d != nil && (d.Err == nil || d.Err.SQLState != "42000") {
				t.Fatalf("bad denial %+v", d)
			}
		}
		p.CheckSchema("u", "h", sql)
		useTarget(sql)
		firstWord(sql)
	})
}
