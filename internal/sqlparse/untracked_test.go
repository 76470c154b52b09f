package sqlparse

import "testing"

func TestUntrackedState(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want bool
	}{
		{`SELECT 1`, false},
		{`SET sql_mode = 'ANSI'`, false},
		{`SET SESSION sql_mode = 'ANSI'`, false},
		{`SET @@session.sql_mode = 'ANSI'`, false},
		{`SET @@SESSION.SQL_MODE="ANSI"`, false},
		{`SET @@local.time_zone = '+01:00'`, false},
		{`SET NAMES utf8mb4`, false},
		{`SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED`, false},
		{`SET time_zone = @@global.time_zone`, false},
		{`SET time_zone = @@time_zone`, false},
		{`SET STATEMENT max_statement_time=1 FOR SELECT 1`, false},
		{`SELECT @@sql_mode`, false},
		{`SELECT 'SET @@sql_mode = 1'`, false},
		{`SELECT * FROM t WHERE note = 'call me'`, false},
		{`SET @@SQL_MODE="ANSI"`, true},
		{`set @@sql_mode := ''`, true},
		{`SET @@SQL_MODE="ANSI"; SELECT 1`, true},
		{`SELECT 1; SET @@sql_mode=''`, true},
		{`SET time_zone='+00:00', @@sql_mode=''`, true},
		{`SET TRANSACTION ISOLATION LEVEL SERIALIZABLE`, true},
		{`set transaction read only`, true},
		{`/* c */ CALL p()`, true},
		{`EXECUTE stmt1`, true},
		{`BEGIN NOT ATOMIC SET @@sql_mode=''; END`, true},
		{`IF 1 THEN SET TRANSACTION READ ONLY; END IF`, true},
	} {
		if got := UntrackedState(tc.sql); got != tc.want {
			t.Errorf("UntrackedState(%q) = %v, want %v", tc.sql, got, tc.want)
		}
	}
}

func BenchmarkUntrackedStatePlain(b *testing.B) {
	q := "SELECT c FROM sbtest1 WHERE id=4923"
	for i := 0; i < b.N; i++ {
		if UntrackedState(q) {
			b.Fatal(q)
		}
	}
}

func FuzzUntrackedState(f *testing.F) {
	for _, s := range []string{"SET @@x=1", "CALL p()", "SET TRANSACTION READ ONLY", "SELECT '@@'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { _ = UntrackedState(s) })
}
