package sqlparse

import (
	"testing"
)

// scanCorpus: the classification tests' statements and the data path's text checks.
var scanCorpus = []string{
	"SELECT c FROM sbtest1 WHERE id=42",
	"select c from sbtest.sbtest1 where id = ?",
	"SELECT * FROM `db`.`my``t`",
	"SELECT 1",
	"SELECT * FROM a JOIN b.c ON a.x=c.x LEFT JOIN a ON 1 WHERE a.y IN (SELECT y FROM d.e)",
	"SELECT (SELECT MAX(x) FROM s1) FROM t1 WHERE EXISTS (SELECT 1 FROM s2.t2)",
	"SELECT * FROM (SELECT * FROM inner1) AS dt",
	"WITH c AS (SELECT * FROM a.b) SELECT * FROM c JOIN d ON c.x=d.x",
	"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n<5) SELECT * FROM r",
	"SELECT * FROM t1 UNION SELECT * FROM t2",
	"(SELECT 1) UNION (SELECT a FROM t FOR UPDATE)",
	"TABLE t",
	"SELECT * FROM seq_1_to_10",
	"/*!40101 SELECT 1 */",
	"SELECT /*+ MAX_EXECUTION_TIME(100) */ a FROM t",
	"SELECT * FROM t LIMIT 10 ROWS EXAMINED 1000",
	"SELECT * FROM t LIMIT ROWS EXAMINED 1000",
	`SELECT "a" FROM "d"."t"`,
	`SELECT a FROM t WHERE b = 'x\'`,
	"SELECT MAX (a) FROM t",
	"SELECT 1--1",
	"SELECT * FROM t WHERE id=1 FOR UPDATE",
	"SELECT * FROM t WHERE id=1 LOCK IN SHARE MODE",
	"SELECT * FROM t FOR SHARE SKIP LOCKED",
	"SELECT * FROM t FOR UPDATE NOWAIT",
	"SELECT * FROM t FOR UPDATE WAIT 5",
	"SELECT * FROM t WHERE id IN (SELECT id FROM u FOR UPDATE)",
	"SELECT * FROM t /*M!100101 FOR UPDATE */",
	"SELECT * FROM t /*!100101 LOCK IN SHARE MODE */",
	"SELECT * FROM t INTO OUTFILE '/tmp/x'",
	"SELECT a FROM t INTO DUMPFILE '/tmp/x'",
	"SELECT 1 INTO @a",
	"SELECT a, b INTO @a, @b FROM t WHERE id=1",
	"SELECT a FROM t WHERE id=1 INTO @a",
	"SELECT @a",
	"SELECT @a := COUNT(*) FROM t",
	"SELECT * FROM t WHERE id = @id",
	"SET @a = 1, @b := 2",
	"SELECT @@version, @@session.sql_mode",
	"SELECT GET_LOCK('a', 10)",
	"SELECT RELEASE_LOCK('a')",
	"SELECT RELEASE_ALL_LOCKS()",
	"SELECT IS_USED_LOCK('a'), IS_FREE_LOCK('b')",
	"SELECT SLEEP(1)",
	"SELECT BENCHMARK(10, MD5('a'))",
	"SELECT LAST_INSERT_ID(5)",
	"SELECT NEXTVAL(s)",
	"SELECT NEXT VALUE FOR db.s",
	"SELECT PREVIOUS VALUE FOR s",
	"SELECT SETVAL(s, 100)",
	"SELECT LASTVAL(s)",
	"SELECT MASTER_POS_WAIT('f', 4)",
	"SELECT MASTER_GTID_WAIT('0-1-1')",
	"SELECT mydb.myfunc(1)",
	"SELECT NOW(), RAND(), UUID(), CONCAT(a, 'x') FROM t",
	"DO GET_LOCK('x', 1)",
	"DO 1",
	"SELECT LAST_INSERT_ID()",
	"SELECT ROW_COUNT()",
	"SELECT FOUND_ROWS()",
	"SELECT @@warning_count",
	"SELECT @@session.error_count",
	"SELECT @@identity",
	"SHOW WARNINGS",
	"SHOW ERRORS",
	"SHOW COUNT(*) WARNINGS",
	"SHOW PROFILES",
	"INSERT INTO sbtest1 (id, k, c, pad) VALUES (0, 5014, '36', '22')",
	"INSERT INTO d.t SET a=1 ON DUPLICATE KEY UPDATE a=a+1",
	"INSERT INTO a SELECT * FROM b JOIN c.d USING (id)",
	"INSERT INTO t VALUES (1) RETURNING id",
	"REPLACE INTO t VALUES (1)",
	"REPLACE INTO t SELECT * FROM s RETURNING *",
	"UPDATE sbtest1 SET k=k+1 WHERE id=5",
	"UPDATE a, b.c SET a.x=c.y WHERE a.id=c.id",
	"UPDATE a JOIN b ON a.id=b.id SET a.x=1",
	"UPDATE t SET x=(SELECT MAX(y) FROM u) WHERE id=1",
	"WITH c AS (SELECT id FROM s) UPDATE t SET a=1 WHERE id IN (SELECT id FROM c)",
	"DELETE FROM sbtest1 WHERE id=5",
	"DELETE a FROM a JOIN b ON a.id=b.id",
	"DELETE a, b FROM a, x.b WHERE a.id=b.id",
	"DELETE FROM a USING a JOIN b JOIN c.d",
	"DELETE FROM t WHERE id=1 RETURNING id, name",
	"WITH c AS (SELECT 1 AS id) DELETE FROM t WHERE id IN (SELECT id FROM c)",
	"LOAD DATA INFILE '/tmp/x' INTO TABLE d.t",
	"LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE t FIELDS TERMINATED BY ','",
	"CALL p(1, @out)",
	"CALL d.p()",
	"BEGIN",
	"START TRANSACTION READ ONLY",
	"START TRANSACTION WITH CONSISTENT SNAPSHOT",
	"COMMIT",
	"COMMIT WORK",
	"ROLLBACK WORK",
	"ROLLBACK",
	"ROLLBACK TO SAVEPOINT sp1",
	"SAVEPOINT sp1",
	"RELEASE SAVEPOINT sp1",
	"SET NAMES utf8mb4",
	"SET sql_mode = 'ANSI'",
	"SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
	"SET GLOBAL max_connections = 100",
	"SET @@global.autocommit = 0",
	"SET STATEMENT max_statement_time=1 FOR SELECT * FROM t",
	"SET STATEMENT max_statement_time=1, sql_mode='' FOR UPDATE t SET a=1",
	"USE sbtest",
	"SET autocommit=0",
	"SET autocommit = 1",
	"SET AUTOCOMMIT=OFF",
	"SET @@autocommit = OFF",
	"SET @@autocommit = ON",
	"SET @@session.autocommit = 0",
	"SET SESSION autocommit=1",
	"SET LOCAL autocommit = 0",
	"set autocommit=true",
	"set autocommit='off'",
	"SET autocommit = DEFAULT",
	"SET autocommit = 0, @x = 1",
	"SET GLOBAL autocommit = 0",
	"/*!40101 SET autocommit=0 */",
	"SHOW TABLES",
	"SHOW SLAVE STATUS",
	"SHOW CREATE TABLE d.t",
	"SHOW COLUMNS FROM t",
	"SHOW VARIABLES LIKE 'auto%'",
	"EXPLAIN SELECT * FROM t WHERE id=1",
	"EXPLAIN SELECT * FROM t FOR UPDATE",
	"EXPLAIN UPDATE t SET a=1",
	"EXPLAIN ANALYZE DELETE FROM t",
	"DESC t",
	"DESCRIBE d.t",
	"HELP 'select'",
	"PREPARE s FROM 'SELECT ?'",
	"EXECUTE s USING @a",
	"DEALLOCATE PREPARE s",
	"DROP PREPARE s",
	"LOCK TABLES t READ, d.u WRITE",
	"UNLOCK TABLES",
	"CREATE TABLE t (id INT PRIMARY KEY)",
	"CREATE TEMPORARY TABLE tmp (id INT)",
	"DROP TEMPORARY TABLE IF EXISTS tmp",
	"DROP TABLE a, d.b",
	"ALTER TABLE t ADD COLUMN c INT",
	"TRUNCATE TABLE t",
	"RENAME TABLE a TO b",
	"CREATE INDEX i ON t (a)",
	"CREATE DATABASE d",
	"DROP DATABASE d",
	"CREATE VIEW v AS SELECT * FROM t FOR UPDATE",
	"CREATE TABLE t2 LIKE d.t1",
	"CREATE SEQUENCE s",
	"GRANT SELECT ON d.* TO 'u'@'%'",
	"REVOKE ALL ON *.* FROM 'u'@'%'",
	"FLUSH PRIVILEGES",
	"KILL 42",
	"KILL QUERY 42",
	"KILL QUERY ID 42",
	"CREATE USER 'u'@'%' IDENTIFIED BY 'p'",
	"ALTER USER 'u'@'%' IDENTIFIED BY 'p'",
	"DROP USER 'u'@'%'",
	"SET PASSWORD FOR 'u'@'%' = 'x'",
	"ANALYZE TABLE t",
	"OPTIMIZE TABLE t",
	"SHUTDOWN",
	"DROP SEQUENCE d.s",
	"SELECT 1; SELECT 2",
	"SELECT a FROM t; DROP TABLE u",
	"SELECT a FROM t; SELECT b FROM u FOR UPDATE",
	"BEGIN; UPDATE t SET a=1; COMMIT",
	"SET autocommit=0; INSERT INTO t VALUES (1)",
	"SELECT * FROM t WHERE a = ANY_FUNKY SYNTAX",
	"SELECT @a:=1 FROM t FOR UPDATE ~~~",
	"  /* c */ -- x\n UPDATE t SET a = WHERE",
	"INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING",
	"DROP TABLE t CASCADE CONSTRAINTS PURGE",
	"CHECK TABLE t",
	"REPAIR TABLE t",
	"STOP SLAVE",
	"SHOW BINLOG EVENTS",
	"XA START 'x'",
	"HANDLER t OPEN",
	"frobnicate the database",
	"",
	"-- nothing",
	"SELECT GET_LOCK('a', 1) ~~~",
	"SELECT LAST_INSERT_ID() ~~~",
	"SET autocommit = 0 ~~~",
	"SET @@session.autocommit := 'ON' ~~~",
	"CREATE TEMPORARY TABLE t (a INT) ~~~",
	"LOCK TABLES t READ ~~~",
	"SELECT 1 ~~~; DROP TABLE t",
	"WITH c AS (SELECT 1) UPDATE t SET a = ~~~",
	"SET STATEMENT x=1 FOR DELETE FROM t WHERE ~~~",
	"/*M!100000 DROP TABLE t ~~~ */",
	"SELECT * FROM t WHERE s = 'it''s ; DROP TABLE x' ~~~",
	`SELECT 'a\' ; DROP TABLE x' ~~~`,
	"SELECT 1 # ; DROP TABLE x\n ~~~",
	"SELECT 1 ~~~; \n -- only a comment\n",
	"SELECT `a;b` ~~~",
	"SELECT * INTO OUTFILE '/x' FROM t ~~~",
	"SELECT c FROM sbtest1 WHERE id=5012",
	"kill 5",
	"SELECT 'kill'",
	"KiLl QUERY 3",
	"SELECT connection_id()",
	"SELECT get_lock('a', 1)",
	"LOCK TABLES t READ",
	"LOCK TABLE t WRITE",
	"SELECT * FROM t FOR UPDATE",
	"select * from t for  update",
	"select * from t for/*x*/update",
	"SELECT * FROM t FOR SHARE",
	"SELECT * FROM t LOCK IN SHARE MODE",
	"SELECT 1 INTO @x",
	"SELECT 1 INTO OUTFILE '/tmp/x'",
	"SET SESSION session_track_schema = 1",
	"SET @a := 1",
	"SELECT '@'",
	"SELECT \"@\"",
	"SELECT `@`",
	"SELECT 'a\\'@'",
	"SELECT '\\\\' , @x",
	"SELECT @@version",
	"SELECT @@warning_count",
	"SELECT @@identity",
	"SELECT @a",
	"SELECT /* it's */ @a",
	"SELECT 1 -- it's\n, @a",
	"SELECT 1 # it's\n, @a",
	"SELECT /*!40001 @a */ 1",
	"SET @@sql_mode = ''",
	"CALL p()",
	"CALL p(@out)",
	"SHOW TABLES",
	"SHOW WARNINGS",
	"SHOW ERRORS",
	"DESC t",
	"DESCRIBE t",
	"EXPLAIN SELECT 1",
	"EXPLAIN ANALYZE SELECT * FROM t",
	"ANALYZE SELECT * FROM t",
	"/* c */ SELECT 1",
	"(SELECT 1)",
	"SELECT 1; DELETE FROM t",
	"SELECT 1;",
	"SELECT 1 ;  ",
	"SELECT 1; LOCK TABLES t READ",
	"SELECT recall, executed, transactions FROM t",
	"SELECT last_name, next_id, prev, waiting FROM users",
	"SELECT updated_at FROM t WHERE shared = 1",
	"SELECT SLEEP(1)",
	"SELECT BENCHMARK(10, 1)",
	"SELECT LAST_INSERT_ID()",
	"SELECT LAST_INSERT_ID(5)",
	"SELECT ROW_COUNT()",
	"SELECT FOUND_ROWS()",
	"SELECT NEXTVAL(s)",
	"SELECT NEXT VALUE FOR s",
	"SELECT PREVIOUS VALUE FOR s",
	"SELECT LASTVAL(s)",
	"SELECT SETVAL(s, 10)",
	"SELECT RELEASE_LOCK('a')",
	"SELECT IS_FREE_LOCK('a')",
	"SELECT MASTER_POS_WAIT('f', 4)",
	"SELECT db.f(1)",
	"SELECT `db`.`f` (1)",
	"SELECT COUNT(*) FROM t WHERE a IN (1, 2)",
	"SELECT * FROM db.t USE INDEX (i) WHERE a = 1",
	"SELECT 'GET_LOCK(1)'",
	"SELECT 1 /* FOR UPDATE */",
	"INSERT INTO t VALUES (1)",
	"UPDATE t SET a = 1",
	"DELETE FROM t",
	"DO 1",
	"WITH x AS (SELECT 1) SELECT * FROM x",
	"SELECT a FROM t UNION SELECT b FROM u",
	"SELECT JSON_EXTRACT(c, '$.a') FROM t",
	"SELECT 1.5 + t.a FROM t",
	"BEGIN",
	"COMMIT",
	"SET autocommit = 0",
	"USE db",
}

// overApproximated are corpus statements where the scan says more than the parser (a needle
// in a string or a comment, a name the scan takes for a call): the only differences allowed.
var overApproximated = map[string]bool{
	// A needle in a string or a comment.
	"SELECT 'GET_LOCK(1)'":      true,
	"SELECT 1 /* FOR UPDATE */": true,
	// An account name's '@' taken for a user variable.
	"GRANT SELECT ON d.* TO 'u'@'%'":        true,
	"REVOKE ALL ON *.* FROM 'u'@'%'":        true,
	"CREATE USER 'u'@'%' IDENTIFIED BY 'p'": true,
	"ALTER USER 'u'@'%' IDENTIFIED BY 'p'":  true,
	"DROP USER 'u'@'%'":                     true,
	"SET PASSWORD FOR 'u'@'%' = 'x'":        true,
	// A quote that only ends under NO_BACKSLASH_ESCAPES (the scan assumes the worst).
	"SELECT a FROM t WHERE b = 'x\\'": true,
	// Read-only statements the scan does not follow to their end: WITH, SET STATEMENT … FOR,
	// several statements, a plain EXPLAIN of a locking read or EXPLAIN ANALYZE of a read.
	"WITH c AS (SELECT * FROM a.b) SELECT * FROM c JOIN d ON c.x=d.x":                         true,
	"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n<5) SELECT * FROM r": true,
	"WITH x AS (SELECT 1) SELECT * FROM x":                                                    true,
	"SET STATEMENT max_statement_time=1 FOR SELECT * FROM t":                                  true,
	"SELECT 1; SELECT 2":                 true,
	"EXPLAIN SELECT * FROM t FOR UPDATE": true,
	"EXPLAIN ANALYZE SELECT * FROM t":    true,
}

// checkScan fails when the scan errs on the unsafe side of the parser: Locks or UserVars false
// where the parser's are true, ReadOnly true where the parser's (and not a locking read) is
// false. It returns whether they agree exactly.
func checkScan(t *testing.T, p *Parser, q string) (agree bool) {
	t.Helper()
	f := p.Parse(q)
	if f.ParseErr != nil {
		return true // the data path then uses the scan alone
	}
	s := ScanText([]byte(q))
	locks, userVars, ro := s.Locks([]byte(q)), s.UserVars(), s.ReadOnly([]byte(q))
	wantRO := f.ReadOnly && !f.LockingRead
	if f.Locks && !locks {
		t.Fatalf("%q: the parser sees a lock, the scan does not", q)
	}
	if f.UserVars && !userVars {
		t.Fatalf("%q: the parser sees user variables, the scan does not", q)
	}
	if ro && !wantRO {
		t.Fatalf("%q: the scan says read-only, the parser does not (%+v)", q, f)
	}
	return locks == f.Locks && userVars == f.UserVars && ro == wantRO
}

// The scan never errs on the unsafe side of the parser, and agrees with it exactly on the
// corpus except where a needle sits in a string or a comment.
func TestScanAgreesWithParser(t *testing.T) {
	p := New(Options{})
	var differ []string
	for _, q := range scanCorpus {
		if !checkScan(t, p, q) && !overApproximated[q] {
			differ = append(differ, q)
		}
	}
	for q := range overApproximated {
		if checkScan(t, p, q) {
			t.Errorf("%q is listed as over-approximated but the scan agrees with the parser", q)
		}
	}
	for _, q := range differ {
		f := p.Parse(q)
		s := ScanText([]byte(q))
		t.Errorf("%q: scan locks=%v uservars=%v ro=%v, parser %v %v %v", q, s.Locks([]byte(q)), s.UserVars(),
			s.ReadOnly([]byte(q)), f.Locks, f.UserVars, f.ReadOnly && !f.LockingRead)
	}
}

func TestScanPrefilters(t *testing.T) {
	for _, c := range []struct {
		q                                     string
		kill, connID, track, untracked, multi bool
	}{
		{"SELECT 1", false, false, false, false, false},
		{"kill 5", true, false, false, false, false},
		{"SELECT connection_id()", false, true, false, false, false},
		{"SET SESSION session_track_schema = 1", false, false, true, false, false},
		{"SET @@sql_mode = ''", false, false, false, true, false},
		{"CALL p()", false, false, false, true, false},
		{"/* @@x */ SELECT 1", false, false, false, true, false},
		{"SET TRANSACTION READ ONLY", false, false, false, true, false},
		{"SELECT 1; KILL 2", true, false, false, false, true},
	} {
		s := ScanText([]byte(c.q))
		if !s.Scanned() || s.MayKill() != c.kill || s.ConnectionID() != c.connID || s.SessionTrack() != c.track ||
			s.MayBeUntracked() != c.untracked || (s&scMulti != 0) != c.multi {
			t.Errorf("%q: %b", c.q, s)
		}
		if !s.MayBeUntracked() && UntrackedState(c.q) {
			t.Errorf("%q: untracked state not flagged", c.q)
		}
	}
}

// FuzzScan: on any text the parser accepts, the scan never errs on the unsafe side, and the
// untracked prefilter holds.
func FuzzScan(f *testing.F) {
	for _, q := range scanCorpus {
		f.Add(q)
	}
	p := New(Options{CacheEntries: -1})
	f.Fuzz(func(t *testing.T, q string) {
		checkScan(t, p, q)
		if s := ScanText([]byte(q)); !s.MayBeUntracked() && len(q) > 0 && UntrackedState(q) {
			t.Fatalf("%q: untracked state, but the scan did not flag it", q)
		}
	})
}

func BenchmarkScanText(b *testing.B) {
	for _, c := range []struct{ name, q string }{
		{"point_select", "SELECT c FROM sbtest1 WHERE id=5012"},
		{"range", "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 5012 AND 5111 ORDER BY c"},
		{"update", "UPDATE sbtest1 SET k=k+1 WHERE id=5012"},
		{"insert", "INSERT INTO sbtest1 (id, k, c, pad) VALUES (0, 5012, '68487932199-96439406143-93774651418-41631865787-96406072701-20604855487-25459966574-28203206787-41238978918-19503783441', '22195207048-70116052123-74140395089-76317954521-98694025897')"},
	} {
		q := []byte(c.q)
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(q)))
			b.ReportAllocs()
			var sink bool
			for i := 0; i < b.N; i++ {
				s := ScanText(q)
				sink = sink != (s.Locks(q) || s.UserVars() || s.ReadOnly(q))
			}
			_ = sink
		})
	}
}
