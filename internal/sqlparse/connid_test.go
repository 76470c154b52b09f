package sqlparse

import "testing"

func TestConnectionIDSites(t *testing.T) {
	p := New(Options{})
	for _, tc := range []struct {
		sql, db string
		calls   int
		fields  []string
		ok      bool
	}{
		{"SELECT CONNECTION_ID()", "test", 1, []string{"CONNECTION_ID()"}, true},
		{"SELECT 1; SELECT x AS a, CONCAT(CONNECTION_ID())  FROM t", "", 1, []string{"1", "CONCAT(CONNECTION_ID())"}, true},
		{"UPDATE t SET a = CONNECTION_ID()", "test", 1, nil, true},
		{"SELECT * FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()", "test", 0, nil, false},
		{"SELECT * FROM PROCESSLIST WHERE ID = CONNECTION_ID()", "information_schema", 0, nil, false},
		{"CREATE VIEW v AS SELECT CONNECTION_ID()", "test", 0, nil, false},
		{"CREATE TABLE t (a INT DEFAULT (CONNECTION_ID()))", "test", 0, nil, false},
		{"SELECT CONNECTION_ID( FROM", "test", 0, nil, false},
	} {
		calls, spans, ok := p.ConnectionIDSites(tc.sql, tc.db)
		if ok != tc.ok {
			t.Errorf("%q: ok = %v", tc.sql, ok)
			continue
		}
		if !ok {
			continue
		}
		var fields []string
		for _, s := range spans {
			fields = append(fields, tc.sql[s[0]:s[1]])
		}
		if calls != tc.calls || len(fields) != len(tc.fields) {
			t.Errorf("%q: %d calls, fields %q", tc.sql, calls, fields)
			continue
		}
		for i := range fields {
			if fields[i] != tc.fields[i] {
				t.Errorf("%q: fields %q, want %q", tc.sql, fields, tc.fields)
			}
		}
	}
}
