package shard

import (
	"testing"
)

// TestRestoreRoundTrip: rewritten SQL parses again and rewrites to itself
// (with the physical table as the logical one), for expressions the
// restorer must keep exactly.
func TestRestoreRoundTrip(t *testing.T) {
	exprs := []string{
		"NOW() - INTERVAL 1 DAY", "CAST(v AS CHAR(10))", "CONVERT(v USING utf8mb4)", "v COLLATE utf8mb4_bin",
		"BINARY v", "v REGEXP '^a.*$'", "v LIKE 'a\\_%' ESCAPE '!'", "@x", "@@session.sql_mode", "IF(v, 1, 2)",
		"CASE WHEN v > 1 THEN 'a' ELSE NULL END", "COALESCE(v, 0)", "v IS NOT NULL", "v <=> NULL", "-v", "~v", "!v",
		"v DIV 2", "v MOD 3", "v % 3", "v << 2", "v ^ 1", "JSON_EXTRACT(v, '$.a')", "v->>'$.a'", "X'4142'", "b'101'",
		"0x41", "'\\0\\n\\t\\Z\\\\\\''", "N'abc'", "_binary'ab'", "DATE '2020-01-01'", "TIMESTAMP '2020-01-01 00:00:00'",
		"1e-3", "-0.50", "18446744073709551615", "-9223372036854775808", "v IN (1, 2)", "v BETWEEN 1 AND 2",
		"GREATEST(1, v)", "CHAR(65 USING latin1)", "TRIM(LEADING 'x' FROM v)", "SUBSTRING(v, 1, 2)", "POSITION('a' IN v)",
		"DATE_ADD(v, INTERVAL 1 MONTH)", "EXTRACT(YEAR FROM v)", "v = ANY (SELECT 1)",
		"'a' 'b'", "_utf8mb4'x' COLLATE utf8mb4_unicode_ci", "LAST_INSERT_ID()", "UUID()", "DEFAULT(v)",
	}
	rt := orderRouter(t)
	for _, e := range exprs {
		sql := "SELECT " + e + " FROM t_order WHERE id = 2"
		p, err := rt.Plan(sql, "db0")
		if err != nil {
			t.Logf("%s: %v", e, err)
			continue
		}
		out := p.Targets[0].SQL
		// Parse the output again with the physical name mapped back.
		rt2 := mustRouter(t, tableRule("t_order_00000", "mod", "id", 1))
		p2, err := rt2.Plan(out, "db0")
		if err != nil {
			t.Errorf("%s: output does not plan: %s: %v", e, out, err)
			continue
		}
		back := p2.Targets[0].SQL
		want := out[:0] + replaceOnce(out, "`t_order_00000`", "`t_order_00000_00000`")
		if back != want {
			t.Errorf("%s: not stable:\n%s\n%s", e, out, back)
		}
		t.Logf("%-40s %s", e, out)
	}
}

func replaceOnce(s, old, new string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + new + s[i+len(old):]
		}
	}
	return s
}

func TestRestoreStatements(t *testing.T) {
	rt := orderRouter(t)
	cases := []struct{ sql, want string }{
		{"select char(65, 66), char(65 using latin1), insert('abc', 1, 1, 'x') from t_order where id = 2",
			"SELECT CHAR(65, 66) AS `char(65, 66)`,CHAR(65 USING latin1) AS `char(65 using latin1)`,INSERT('abc', 1, 1, 'x') AS `insert('abc', 1, 1, 'x')` FROM `db0`.`t_order_00000` WHERE `id`=2"},
		{"select v from t_order force index (ix) where id = 2 limit 1 offset 2", "SELECT `v` FROM `db0`.`t_order_00000` FORCE INDEX (`ix`) WHERE `id`=2 LIMIT 2,1"},
		{"select high_priority sql_no_cache v from t_order where id = 2 for update nowait", "SELECT HIGH_PRIORITY SQL_NO_CACHE `v` FROM `db0`.`t_order_00000` WHERE `id`=2 FOR UPDATE NOWAIT"},
		{"select v from t_order where id = 2 for update skip locked", "SELECT `v` FROM `db0`.`t_order_00000` WHERE `id`=2 FOR UPDATE SKIP LOCKED"},
		{"select v from t_order where id = 2 lock in share mode", "SELECT `v` FROM `db0`.`t_order_00000` WHERE `id`=2 LOCK IN SHARE MODE"},
		{"delete low_priority quick ignore from t_order where id = 2", "DELETE LOW_PRIORITY QUICK IGNORE FROM `db0`.`t_order_00000` WHERE `id`=2"},
		{"update ignore t_order set v = now() where id = 2", "UPDATE IGNORE `db0`.`t_order_00000` SET `v`=NOW() WHERE `id`=2"},
		{"insert into t_order (id, n) values (2, 1) on duplicate key update n = n + values(n)",
			"INSERT INTO `db0`.`t_order_00000` (`id`,`n`) VALUES (2,1) ON DUPLICATE KEY UPDATE `n`=`n`+VALUES(`n`)"},
		{"select v from t_order partition (p0) where id = 2", "SELECT `v` FROM `db0`.`t_order_00000` PARTITION(`p0`) WHERE `id`=2"},
	}
	for _, c := range cases {
		p, err := rt.Plan(c.sql, "db0")
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		if got := p.Targets[0].SQL; got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.sql, got, c.want)
		}
	}
}
