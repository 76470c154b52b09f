package access

import (
	"errors"
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/govmetrics"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

func sel(tables ...sqlparse.Table) *sqlparse.Facts {
	return &sqlparse.Facts{Kind: sqlparse.KindSelect, Class: sqlparse.ClassRead, ReadOnly: true, Tables: tables}
}

func tb(schema, name string) sqlparse.Table { return sqlparse.Table{Schema: schema, Name: name} }

var testConfig = &proxyconfig.Access{Users: []proxyconfig.AccessUser{
	{User: "app", Password: "pw", Schemas: []string{"shop"}, Kinds: []string{"read", "write"}},
	{User: "reporter", Password: "r", Tables: []string{"shop.orders", "stats.*", "`odd.db`.`t``x`"}, Kinds: []string{"read"}, MaxRows: 1000},
	{User: "dba", Password: "d"},
	{User: "limited", Password: "l", MaxRows: 10},
	{User: "anyTable", Password: "a", Schemas: []string{"shop"}, Tables: []string{"*"}},
}}

func TestCheck(t *testing.T) {
	p, err := Compile(testConfig, Options{})
	if err != nil {
		t.Fatal(err)
	}
	upd := &sqlparse.Facts{Kind: sqlparse.KindUpdate, Class: sqlparse.ClassWrite, Tables: []sqlparse.Table{tb("", "orders")}}
	ddl := &sqlparse.Facts{Kind: sqlparse.KindDDL, Class: sqlparse.ClassDDL, Tables: []sqlparse.Table{tb("", "orders")}}
	createDB := &sqlparse.Facts{Kind: sqlparse.KindDDL, Class: sqlparse.ClassDDL}
	begin := &sqlparse.Facts{Kind: sqlparse.KindBegin, Class: sqlparse.ClassTransaction}
	use := &sqlparse.Facts{Kind: sqlparse.KindUse, Class: sqlparse.ClassTransaction}
	tests := []struct {
		name    string
		user    string
		schema  string
		cmd     byte
		sql     string
		f       *sqlparse.Facts
		code    uint16 // 0 = allowed
		reason  string
		msg     string
		maxRows uint64
	}{
		{"unlisted user", "root", "x", mysql.ComQuery, "select * from secret.t", sel(tb("secret", "t")), 0, "", "", 0},
		{"unrestricted user", "dba", "x", mysql.ComQuery, "drop table t", ddl, 0, "", "", 0},
		{"unqualified table in allowed schema", "app", "shop", mysql.ComQuery, "select * from orders", sel(tb("", "orders")), 0, "", "", 0},
		{"unqualified table, session schema not allowed", "app", "other", mysql.ComQuery, "select * from orders", sel(tb("", "orders")),
			mysql.ErrCodeTableAccessDenied, govmetrics.ReasonTable, "SELECT command denied to user 'app'@'10.0.0.1' for table `other`.`orders`", 0},
		{"qualified table in other schema", "app", "shop", mysql.ComQuery, "select * from hr.pay", sel(tb("", "orders"), tb("hr", "pay")),
			mysql.ErrCodeTableAccessDenied, govmetrics.ReasonTable, "for table `hr`.`pay`", 0},
		{"write allowed", "app", "shop", mysql.ComQuery, "update orders set a=1", upd, 0, "", "", 0},
		{"ddl denied with table", "app", "shop", mysql.ComQuery, "alter table orders add c int", ddl,
			mysql.ErrCodeTableAccessDenied, govmetrics.ReasonKind, "ALTER command denied to user 'app'@'10.0.0.1' for table `shop`.`orders`", 0},
		{"ddl denied without table", "app", "shop", mysql.ComQuery, "create database x", createDB,
			ErrCodeSpecificAccessDenied, govmetrics.ReasonKind, "you need (at least one of) the CREATE, ALTER, DROP privilege(s)", 0},
		{"transaction control always allowed", "reporter", "", mysql.ComQuery, "begin", begin, 0, "", "", 0},
		{"reporter table", "reporter", "shop", mysql.ComQuery, "select * from orders", sel(tb("", "orders")), 0, "", "", 1000},
		{"reporter other table", "reporter", "shop", mysql.ComQuery, "select * from users", sel(tb("", "users")),
			mysql.ErrCodeTableAccessDenied, govmetrics.ReasonTable, "`shop`.`users`", 0},
		{"reporter wildcard schema", "reporter", "", mysql.ComQuery, "select * from stats.daily", sel(tb("stats", "daily")), 0, "", "", 1000},
		{"reporter quoted pattern", "reporter", "", mysql.ComQuery, "q", sel(tb("odd.db", "t`x")), 0, "", "", 1000},
		{"table names are case-sensitive", "reporter", "shop", mysql.ComQuery, "select * from ORDERS", sel(tb("", "ORDERS")),
			mysql.ErrCodeTableAccessDenied, govmetrics.ReasonTable, "", 0},
		{"reporter write denied", "reporter", "shop", mysql.ComQuery, "update orders set a=1", upd,
			mysql.ErrCodeTableAccessDenied, govmetrics.ReasonKind, "UPDATE command denied", 0},
		{"max_rows only on SELECT", "limited", "", mysql.ComQuery, "update t set a=1", upd, 0, "", "", 0},
		{"max_rows unrestricted user", "limited", "", mysql.ComQuery, "select 1", sel(), 0, "", "", 10},
		{"star tables, schema limited", "anyTable", "shop", mysql.ComQuery, "select * from x", sel(tb("", "x")), 0, "", "", 0},
		{"star tables, other schema", "anyTable", "shop", mysql.ComQuery, "select * from hr.x", sel(tb("hr", "x")),
			mysql.ErrCodeTableAccessDenied, govmetrics.ReasonTable, "", 0},
		{"COM_INIT_DB allowed", "app", "", mysql.ComInitDB, "shop", nil, 0, "", "", 0},
		{"COM_INIT_DB denied", "app", "", mysql.ComInitDB, "hr", nil,
			mysql.ErrCodeDBAccessDenied, govmetrics.ReasonSchema, "Access denied for user 'app'@'10.0.0.1' to database 'hr'", 0},
		{"USE allowed", "app", "", mysql.ComQuery, "USE `shop`;", use, 0, "", "", 0},
		{"USE denied", "app", "shop", mysql.ComQuery, "/* c */ use hr", use, mysql.ErrCodeDBAccessDenied, govmetrics.ReasonSchema, "database 'hr'", 0},
		{"USE unparsable", "app", "shop", mysql.ComQuery, "use a b", use, ErrCodeSpecificAccessDenied, govmetrics.ReasonUnparsed, "", 0},
		{"COM_FIELD_LIST", "reporter", "shop", mysql.ComFieldList, "users\x00", nil, mysql.ErrCodeTableAccessDenied, govmetrics.ReasonTable, "`shop`.`users`", 0},
		{"COM_FIELD_LIST ok", "reporter", "shop", mysql.ComFieldList, "orders\x00", nil, 0, "", "", 0},
		{"parse error", "app", "shop", mysql.ComQuery, "selec x", &sqlparse.Facts{ParseErr: errors.New("syntax")},
			ErrCodeSpecificAccessDenied, govmetrics.ReasonUnparsed, "could not be parsed", 0},
		{"multi statement", "app", "shop", mysql.ComQuery, "select 1; select 2", &sqlparse.Facts{Kind: sqlparse.KindSelect, Multi: true},
			ErrCodeSpecificAccessDenied, govmetrics.ReasonUnparsed, "multi-statement", 0},
		{"no facts with SQL", "app", "shop", mysql.ComQuery, "select 1", nil, ErrCodeSpecificAccessDenied, govmetrics.ReasonUnparsed, "", 0},
		{"no statement", "app", "shop", mysql.ComPing, "", nil, 0, "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mr, d := p.Check(tt.user, tt.schema, "10.0.0.1:5555", tt.cmd, tt.sql, tt.f)
			if tt.code == 0 {
				if d != nil {
					t.Fatalf("denied: %v", d.Err)
				}
				if mr != tt.maxRows {
					t.Errorf("max rows = %d, want %d", mr, tt.maxRows)
				}
				return
			}
			if d == nil {
				t.Fatal("allowed")
			}
			if d.Err.Code != tt.code || d.Err.SQLState != "42000" || d.Reason != tt.reason || d.Rule != "access:"+tt.user {
				t.Errorf("denied = %+v %+v", d, d.Err)
			}
			if !strings.Contains(d.Err.Message, tt.msg) {
				t.Errorf("message %q does not contain %q", d.Err.Message, tt.msg)
			}
		})
	}
}

func TestCheckSchemaAndLookup(t *testing.T) {
	p, _ := Compile(testConfig, Options{})
	if d := p.CheckSchema("app", "h:1", "shop"); d != nil {
		t.Error(d.Err)
	}
	if d := p.CheckSchema("app", "h:1", ""); d != nil {
		t.Error(d.Err)
	}
	if d := p.CheckSchema("app", "h:1", "Shop"); d == nil || d.Err.Code != mysql.ErrCodeDBAccessDenied {
		t.Error("case variant allowed")
	}
	if d := p.CheckSchema("reporter", "h:1", "anything"); d != nil {
		t.Error(d.Err)
	}
	if pw, ok := p.Lookup("reporter"); !ok || pw != "r" {
		t.Errorf("lookup = %q %v", pw, ok)
	}
	if _, ok := p.Lookup("nobody"); ok {
		t.Error("unknown user found")
	}
	var nilP *Policy
	if mr, d := nilP.Check("a", "b", "c", mysql.ComQuery, "x", nil); mr != 0 || d != nil {
		t.Error("nil policy denies")
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		u    proxyconfig.AccessUser
		want string
	}{
		{proxyconfig.AccessUser{}, "access.users[0].user: must not be empty"},
		{proxyconfig.AccessUser{User: "a", Kinds: []string{"execute"}}, `kinds[0]: unknown kind "execute"`},
		{proxyconfig.AccessUser{User: "a", Tables: []string{"orders"}}, `tables[0]: invalid table pattern "orders"`},
		{proxyconfig.AccessUser{User: "a", Tables: []string{"a.b.c"}}, "invalid table pattern"},
		{proxyconfig.AccessUser{User: "a", Tables: []string{".b"}}, "invalid table pattern"},
		{proxyconfig.AccessUser{User: "a", Tables: []string{"`a"}}, "invalid table pattern"},
		{proxyconfig.AccessUser{User: "a", Schemas: []string{"a b"}}, "schemas[0]: invalid schema name"},
	}
	for _, tt := range tests {
		_, err := Compile(&proxyconfig.Access{Users: []proxyconfig.AccessUser{tt.u}}, Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err = %v, want %q", tt.u, err, tt.want)
		}
	}
	if _, err := Compile(&proxyconfig.Access{Users: []proxyconfig.AccessUser{{User: "a"}, {User: "a"}}}, Options{}); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := Compile(&proxyconfig.Access{Users: []proxyconfig.AccessUser{{User: "a", Kinds: []string{" READ "}, Tables: []string{" * "}}}}, Options{}); err != nil {
		t.Errorf("kinds are case-insensitive: %v", err)
	}
}

func BenchmarkCheckPass(b *testing.B) {
	p, _ := Compile(testConfig, Options{})
	f := sel(tb("", "orders"))
	b.ReportAllocs()
	for b.Loop() {
		if _, d := p.Check("reporter", "shop", "10.0.0.1:1", mysql.ComQuery, "select * from orders", f); d != nil {
			b.Fatal(d.Err)
		}
	}
}
