package sqlparse

import (
	"strings"
	"testing"
)

// flagString renders the boolean facts as space-separated names, sorted
// in declaration order, for compact table tests.
func flagString(f *Facts) string {
	var s []string
	add := func(b bool, name string) {
		if b {
			s = append(s, name)
		}
	}
	add(f.LockingRead, "locking")
	add(f.SideEffects, "side")
	add(f.AutocommitOff, "acoff")
	add(f.AutocommitOn, "acon")
	add(f.UserVars, "uservars")
	add(f.TempTable, "temp")
	add(f.Locks, "locks")
	add(f.Multi, "multi")
	add(f.PrevResult, "prev")
	add(f.ParseErr != nil, "err")
	return strings.Join(s, " ")
}

// tableString renders tables as "schema.name name ...".
func tableString(ts []Table) string {
	var s []string
	for _, t := range ts {
		if t.Schema != "" {
			s = append(s, t.Schema+"."+t.Name)
		} else {
			s = append(s, t.Name)
		}
	}
	return strings.Join(s, " ")
}

func TestClassify(t *testing.T) {
	const (
		R = ClassRead
		W = ClassWrite
		D = ClassDDL
		A = ClassAdmin
		T = ClassTransaction
	)
	tests := []struct {
		sql    string
		kind   Kind
		class  Class
		ro     bool
		tables string
		flags  string
	}{
		// SELECT and friends.
		{"SELECT c FROM sbtest1 WHERE id=42", KindSelect, R, true, "sbtest1", ""},
		{"select c from sbtest.sbtest1 where id = ?", KindSelect, R, true, "sbtest.sbtest1", ""},
		{"SELECT * FROM `db`.`my``t`", KindSelect, R, true, "db.my`t", ""},
		{"SELECT 1", KindSelect, R, true, "", ""},
		{"SELECT * FROM a JOIN b.c ON a.x=c.x LEFT JOIN a ON 1 WHERE a.y IN (SELECT y FROM d.e)", KindSelect, R, true, "a b.c d.e", ""},
		{"SELECT (SELECT MAX(x) FROM s1) FROM t1 WHERE EXISTS (SELECT 1 FROM s2.t2)", KindSelect, R, true, "s1 t1 s2.t2", ""},
		{"SELECT * FROM (SELECT * FROM inner1) AS dt", KindSelect, R, true, "inner1", ""},
		{"WITH c AS (SELECT * FROM a.b) SELECT * FROM c JOIN d ON c.x=d.x", KindSelect, R, true, "a.b d", ""},
		{"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n<5) SELECT * FROM r", KindSelect, R, true, "", ""},
		{"SELECT * FROM t1 UNION SELECT * FROM t2", KindSelect, R, true, "t1 t2", ""},
		{"(SELECT 1) UNION (SELECT a FROM t FOR UPDATE)", KindSelect, R, false, "t", "locking"},
		{"TABLE t", KindSelect, R, true, "t", ""},
		{"SELECT * FROM seq_1_to_10", KindSelect, R, true, "seq_1_to_10", ""},
		{"/*!40101 SELECT 1 */", KindSelect, R, true, "", ""},
		{"SELECT /*+ MAX_EXECUTION_TIME(100) */ a FROM t", KindSelect, R, true, "t", ""},
		{"SELECT * FROM t LIMIT 10 ROWS EXAMINED 1000", KindSelect, R, true, "t", ""},
		{"SELECT * FROM t LIMIT ROWS EXAMINED 1000", KindSelect, R, true, "t", ""},
		{`SELECT "a" FROM "d"."t"`, KindSelect, R, true, "d.t", ""},      // ANSI_QUOTES retry
		{`SELECT a FROM t WHERE b = 'x\'`, KindSelect, R, true, "t", ""}, // NO_BACKSLASH_ESCAPES retry
		{"SELECT MAX (a) FROM t", KindSelect, R, true, "t", ""},
		{"SELECT 1--1", KindSelect, R, true, "", ""},
		// Locking reads.
		{"SELECT * FROM t WHERE id=1 FOR UPDATE", KindSelect, R, false, "t", "locking"},
		{"SELECT * FROM t WHERE id=1 LOCK IN SHARE MODE", KindSelect, R, false, "t", "locking"},
		{"SELECT * FROM t FOR SHARE SKIP LOCKED", KindSelect, R, false, "t", "locking"},
		{"SELECT * FROM t FOR UPDATE NOWAIT", KindSelect, R, false, "t", "locking"},
		{"SELECT * FROM t FOR UPDATE WAIT 5", KindSelect, R, false, "t", "locking"},
		{"SELECT * FROM t WHERE id IN (SELECT id FROM u FOR UPDATE)", KindSelect, R, false, "t u", "locking"},
		{"SELECT * FROM t /*M!100101 FOR UPDATE */", KindSelect, R, false, "t", "locking"},
		{"SELECT * FROM t /*!100101 LOCK IN SHARE MODE */", KindSelect, R, false, "t", "locking"},
		// INTO.
		{"SELECT * FROM t INTO OUTFILE '/tmp/x'", KindSelect, W, false, "t", ""},
		{"SELECT a FROM t INTO DUMPFILE '/tmp/x'", KindSelect, W, false, "", "err"}, // not in the TiDB grammar
		{"SELECT 1 INTO @a", KindSelect, R, false, "", "uservars"},
		{"SELECT a, b INTO @a, @b FROM t WHERE id=1", KindSelect, R, false, "t", "uservars"},
		{"SELECT a FROM t WHERE id=1 INTO @a", KindSelect, R, false, "t", "uservars"},
		// User variables.
		{"SELECT @a", KindSelect, R, false, "", "uservars"},
		{"SELECT @a := COUNT(*) FROM t", KindSelect, R, false, "t", "uservars"},
		{"SELECT * FROM t WHERE id = @id", KindSelect, R, false, "t", "uservars"},
		{"SET @a = 1, @b := 2", KindSet, T, false, "", "uservars"},
		{"SELECT @@version, @@session.sql_mode", KindSelect, R, true, "", ""},
		// Side effects and locks.
		{"SELECT GET_LOCK('a', 10)", KindSelect, R, false, "", "side locks"},
		{"SELECT RELEASE_LOCK('a')", KindSelect, R, false, "", "side"},
		{"SELECT RELEASE_ALL_LOCKS()", KindSelect, R, false, "", "side"},
		{"SELECT IS_USED_LOCK('a'), IS_FREE_LOCK('b')", KindSelect, R, false, "", "side"},
		{"SELECT SLEEP(1)", KindSelect, R, false, "", "side"},
		{"SELECT BENCHMARK(10, MD5('a'))", KindSelect, R, false, "", "side"},
		{"SELECT LAST_INSERT_ID(5)", KindSelect, R, false, "", "side"},
		{"SELECT NEXTVAL(s)", KindSelect, R, false, "s", "side"},
		{"SELECT NEXT VALUE FOR db.s", KindSelect, R, false, "db.s", "side"},
		{"SELECT PREVIOUS VALUE FOR s", KindSelect, R, false, "s", "side"},
		{"SELECT SETVAL(s, 100)", KindSelect, R, false, "s", "side"},
		{"SELECT LASTVAL(s)", KindSelect, R, false, "s", "side"},
		{"SELECT MASTER_POS_WAIT('f', 4)", KindSelect, R, false, "", "side"},
		{"SELECT MASTER_GTID_WAIT('0-1-1')", KindSelect, R, false, "", "side"},
		{"SELECT mydb.myfunc(1)", KindSelect, R, false, "", "side"},
		{"SELECT NOW(), RAND(), UUID(), CONCAT(a, 'x') FROM t", KindSelect, R, true, "t", ""},
		{"DO GET_LOCK('x', 1)", KindDo, R, false, "", "side locks"},
		{"DO 1", KindDo, R, true, "", ""},
		// Results of the previous statement.
		{"SELECT LAST_INSERT_ID()", KindSelect, R, false, "", "prev"},
		{"SELECT ROW_COUNT()", KindSelect, R, false, "", "prev"},
		{"SELECT FOUND_ROWS()", KindSelect, R, false, "", "prev"},
		{"SELECT @@warning_count", KindSelect, R, false, "", "prev"},
		{"SELECT @@session.error_count", KindSelect, R, false, "", "prev"},
		{"SELECT @@identity", KindSelect, R, false, "", "prev"},
		{"SHOW WARNINGS", KindShow, R, false, "", "prev"},
		{"SHOW ERRORS", KindShow, R, false, "", "prev"},
		{"SHOW COUNT(*) WARNINGS", KindShow, R, false, "", "prev"},
		{"SHOW PROFILES", KindShow, R, false, "", "prev"},
		// DML.
		{"INSERT INTO sbtest1 (id, k, c, pad) VALUES (0, 5014, '36', '22')", KindInsert, W, false, "sbtest1", ""},
		{"INSERT INTO d.t SET a=1 ON DUPLICATE KEY UPDATE a=a+1", KindInsert, W, false, "d.t", ""},
		{"INSERT INTO a SELECT * FROM b JOIN c.d USING (id)", KindInsert, W, false, "a b c.d", ""},
		{"INSERT INTO t VALUES (1) RETURNING id", KindInsert, W, false, "t", ""},
		{"REPLACE INTO t VALUES (1)", KindReplace, W, false, "t", ""},
		{"REPLACE INTO t SELECT * FROM s RETURNING *", KindReplace, W, false, "t s", ""},
		{"UPDATE sbtest1 SET k=k+1 WHERE id=5", KindUpdate, W, false, "sbtest1", ""},
		{"UPDATE a, b.c SET a.x=c.y WHERE a.id=c.id", KindUpdate, W, false, "a b.c", ""},
		{"UPDATE a JOIN b ON a.id=b.id SET a.x=1", KindUpdate, W, false, "a b", ""},
		{"UPDATE t SET x=(SELECT MAX(y) FROM u) WHERE id=1", KindUpdate, W, false, "t u", ""},
		{"WITH c AS (SELECT id FROM s) UPDATE t SET a=1 WHERE id IN (SELECT id FROM c)", KindUpdate, W, false, "s t", ""},
		{"DELETE FROM sbtest1 WHERE id=5", KindDelete, W, false, "sbtest1", ""},
		{"DELETE a FROM a JOIN b ON a.id=b.id", KindDelete, W, false, "a b", ""},
		{"DELETE a, b FROM a, x.b WHERE a.id=b.id", KindDelete, W, false, "a x.b", ""},
		{"DELETE FROM a USING a JOIN b JOIN c.d", KindDelete, W, false, "a b c.d", ""},
		{"DELETE FROM t WHERE id=1 RETURNING id, name", KindDelete, W, false, "t", ""},
		{"WITH c AS (SELECT 1 AS id) DELETE FROM t WHERE id IN (SELECT id FROM c)", KindDelete, W, false, "t", ""},
		{"LOAD DATA INFILE '/tmp/x' INTO TABLE d.t", KindLoadData, W, false, "d.t", ""},
		{"LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE t FIELDS TERMINATED BY ','", KindLoadData, W, false, "t", ""},
		{"CALL p(1, @out)", KindCall, W, false, "", "uservars"},
		{"CALL d.p()", KindCall, W, false, "", ""},
		// Transactions and session control.
		{"BEGIN", KindBegin, T, false, "", ""},
		{"START TRANSACTION READ ONLY", KindBegin, T, false, "", ""},
		{"START TRANSACTION WITH CONSISTENT SNAPSHOT", KindBegin, T, false, "", ""},
		{"COMMIT", KindCommit, T, false, "", ""},
		{"COMMIT WORK", KindCommit, T, false, "", ""},
		{"ROLLBACK WORK", KindRollback, T, false, "", ""},
		{"ROLLBACK", KindRollback, T, false, "", ""},
		{"ROLLBACK TO SAVEPOINT sp1", KindRollback, T, false, "", ""},
		{"SAVEPOINT sp1", KindSavepoint, T, false, "", ""},
		{"RELEASE SAVEPOINT sp1", KindSavepoint, T, false, "", ""},
		{"SET NAMES utf8mb4", KindSet, T, false, "", ""},
		{"SET sql_mode = 'ANSI'", KindSet, T, false, "", ""},
		{"SET TRANSACTION ISOLATION LEVEL READ COMMITTED", KindSet, T, false, "", ""},
		{"SET GLOBAL max_connections = 100", KindSet, A, false, "", ""},
		{"SET @@global.autocommit = 0", KindSet, A, false, "", ""},
		{"SET STATEMENT max_statement_time=1 FOR SELECT * FROM t", KindSelect, R, true, "t", ""},
		{"SET STATEMENT max_statement_time=1, sql_mode='' FOR UPDATE t SET a=1", KindUpdate, W, false, "t", ""},
		{"USE sbtest", KindUse, T, false, "", ""},
		// Autocommit.
		{"SET autocommit=0", KindSet, T, false, "", "acoff"},
		{"SET autocommit = 1", KindSet, T, false, "", "acon"},
		{"SET AUTOCOMMIT=OFF", KindSet, T, false, "", "acoff"},
		{"SET @@autocommit = OFF", KindSet, T, false, "", "acoff"},
		{"SET @@autocommit = ON", KindSet, T, false, "", "acon"},
		{"SET @@session.autocommit = 0", KindSet, T, false, "", "acoff"},
		{"SET SESSION autocommit=1", KindSet, T, false, "", "acon"},
		{"SET LOCAL autocommit = 0", KindSet, T, false, "", "acoff"},
		{"set autocommit=true", KindSet, T, false, "", "acon"},
		{"set autocommit='off'", KindSet, T, false, "", "acoff"},
		{"SET autocommit = DEFAULT", KindSet, T, false, "", "acon"},
		{"SET autocommit = 0, @x = 1", KindSet, T, false, "", "acoff uservars"},
		{"SET GLOBAL autocommit = 0", KindSet, A, false, "", ""},
		{"/*!40101 SET autocommit=0 */", KindSet, T, false, "", "acoff"},
		// SHOW, EXPLAIN, misc reads.
		{"SHOW TABLES", KindShow, R, true, "", ""},
		{"SHOW SLAVE STATUS", KindShow, R, true, "", ""},
		{"SHOW CREATE TABLE d.t", KindShow, R, true, "d.t", ""},
		{"SHOW COLUMNS FROM t", KindShow, R, true, "t", ""},
		{"SHOW VARIABLES LIKE 'auto%'", KindShow, R, true, "", ""},
		{"EXPLAIN SELECT * FROM t WHERE id=1", KindExplain, R, true, "t", ""},
		{"EXPLAIN SELECT * FROM t FOR UPDATE", KindExplain, R, true, "t", ""},
		{"EXPLAIN UPDATE t SET a=1", KindExplain, R, true, "t", ""},
		{"EXPLAIN ANALYZE DELETE FROM t", KindExplain, W, false, "t", ""},
		{"DESC t", KindExplain, R, true, "t", ""},
		{"DESCRIBE d.t", KindExplain, R, true, "d.t", ""},
		{"HELP 'select'", KindOther, R, true, "", ""},
		// Prepared statements.
		{"PREPARE s FROM 'SELECT ?'", KindPrepare, T, false, "", ""},
		{"EXECUTE s USING @a", KindExecute, W, false, "", "uservars"},
		{"DEALLOCATE PREPARE s", KindDeallocate, T, false, "", ""},
		{"DROP PREPARE s", KindDeallocate, T, false, "", ""},
		// Table locks.
		{"LOCK TABLES t READ, d.u WRITE", KindLockTables, T, false, "t d.u", "locks"},
		{"UNLOCK TABLES", KindUnlockTables, T, false, "", ""},
		// DDL.
		{"CREATE TABLE t (id INT PRIMARY KEY)", KindDDL, D, false, "t", ""},
		{"CREATE TEMPORARY TABLE tmp (id INT)", KindDDL, D, false, "tmp", "temp"},
		{"DROP TEMPORARY TABLE IF EXISTS tmp", KindDDL, D, false, "tmp", "temp"},
		{"DROP TABLE a, d.b", KindDDL, D, false, "a d.b", ""},
		{"ALTER TABLE t ADD COLUMN c INT", KindDDL, D, false, "t", ""},
		{"TRUNCATE TABLE t", KindDDL, D, false, "t", ""},
		{"RENAME TABLE a TO b", KindDDL, D, false, "a b", ""},
		{"CREATE INDEX i ON t (a)", KindDDL, D, false, "t", ""},
		{"CREATE DATABASE d", KindDDL, D, false, "", ""},
		{"DROP DATABASE d", KindDDL, D, false, "", ""},
		{"CREATE VIEW v AS SELECT * FROM t FOR UPDATE", KindDDL, D, false, "v t", ""},
		{"CREATE TABLE t2 LIKE d.t1", KindDDL, D, false, "t2 d.t1", ""},
		{"CREATE SEQUENCE s", KindDDL, D, false, "s", ""},
		// Administration.
		{"GRANT SELECT ON d.* TO 'u'@'%'", KindAdmin, A, false, "", ""},
		{"REVOKE ALL ON *.* FROM 'u'@'%'", KindAdmin, A, false, "", ""},
		{"FLUSH PRIVILEGES", KindAdmin, A, false, "", ""},
		{"KILL 42", KindAdmin, A, false, "", ""},
		{"KILL QUERY 42", KindAdmin, A, false, "", ""},
		{"KILL QUERY ID 42", KindAdmin, A, false, "", ""},
		{"CREATE USER 'u'@'%' IDENTIFIED BY 'p'", KindAdmin, A, false, "", ""},
		{"ALTER USER 'u'@'%' IDENTIFIED BY 'p'", KindAdmin, A, false, "", ""},
		{"DROP USER 'u'@'%'", KindAdmin, A, false, "", ""},
		{"SET PASSWORD FOR 'u'@'%' = 'x'", KindAdmin, A, false, "", ""},
		{"ANALYZE TABLE t", KindAdmin, A, false, "t", ""},
		{"OPTIMIZE TABLE t", KindAdmin, A, false, "t", ""},
		{"SHUTDOWN", KindAdmin, A, false, "", ""},
		{"DROP SEQUENCE d.s", KindDDL, D, false, "d.s", ""},
		// Multi statements: Kind of the first, Class the highest, the union.
		{"SELECT 1; SELECT 2", KindSelect, R, true, "", "multi"},
		{"SELECT a FROM t; DROP TABLE u", KindSelect, D, false, "t u", "multi"},
		{"SELECT a FROM t; SELECT b FROM u FOR UPDATE", KindSelect, R, false, "t u", "locking multi"},
		{"BEGIN; UPDATE t SET a=1; COMMIT", KindBegin, W, false, "t", "multi"},
		{"SET autocommit=0; INSERT INTO t VALUES (1)", KindSet, W, false, "t", "acoff multi"},
		// Rejected by the parser: Kind from the first keyword, never read-only.
		{"SELECT * FROM t WHERE a = ANY_FUNKY SYNTAX", KindSelect, R, false, "", "err"},
		{"SELECT @a:=1 FROM t FOR UPDATE ~~~", KindSelect, R, false, "", "locking uservars err"},
		{"  /* c */ -- x\n UPDATE t SET a = WHERE", KindUpdate, W, false, "", "err"},
		{"INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", KindInsert, W, false, "", "err"},
		{"DROP TABLE t CASCADE CONSTRAINTS PURGE", KindDDL, D, false, "", "err"},
		{"CHECK TABLE t", KindAdmin, A, false, "", "err"},
		{"REPAIR TABLE t", KindAdmin, A, false, "", "err"},
		{"STOP SLAVE", KindAdmin, A, false, "", "err"},
		{"SHOW BINLOG EVENTS", KindShow, R, false, "", "err"},
		{"XA START 'x'", KindOther, T, false, "", "err"},
		{"HANDLER t OPEN", KindOther, R, false, "", "err"},
		{"frobnicate the database", KindOther, A, false, "", "err"},
		{"", KindOther, A, false, "", "err"},
		{"-- nothing", KindOther, A, false, "", "err"},
		{"SELECT GET_LOCK('a', 1) ~~~", KindSelect, R, false, "", "side locks err"},
		{"SELECT LAST_INSERT_ID() ~~~", KindSelect, R, false, "", "prev err"},
		{"SET autocommit = 0 ~~~", KindSet, T, false, "", "acoff err"},
		{"SET @@session.autocommit := 'ON' ~~~", KindSet, T, false, "", "acon err"},
		{"CREATE TEMPORARY TABLE t (a INT) ~~~", KindDDL, D, false, "", "temp err"},
		{"LOCK TABLES t READ ~~~", KindLockTables, T, false, "", "locks err"},
		{"SELECT 1 ~~~; DROP TABLE t", KindSelect, D, false, "", "multi err"},
		{"WITH c AS (SELECT 1) UPDATE t SET a = ~~~", KindUpdate, W, false, "", "err"},
		{"SET STATEMENT x=1 FOR DELETE FROM t WHERE ~~~", KindDelete, W, false, "", "err"},
		{"/*M!100000 DROP TABLE t ~~~ */", KindDDL, D, false, "", "err"},
		{"SELECT * FROM t WHERE s = 'it''s ; DROP TABLE x' ~~~", KindSelect, R, false, "", "err"},
		{`SELECT 'a\' ; DROP TABLE x' ~~~`, KindSelect, R, false, "", "err"},
		{"SELECT 1 # ; DROP TABLE x\n ~~~", KindSelect, R, false, "", "err"},
		{"SELECT 1 ~~~; \n -- only a comment\n", KindSelect, R, false, "", "err"},
		{"SELECT `a;b` ~~~", KindSelect, R, false, "", "err"},
		{"SELECT * INTO OUTFILE '/x' FROM t ~~~", KindSelect, W, false, "", "err"},
	}
	p := New(Options{})
	for _, tc := range tests {
		f := p.Parse(tc.sql)
		got := struct {
			Kind          Kind
			Class         Class
			RO            bool
			Tables, Flags string
		}{f.Kind, f.Class, f.ReadOnly, tableString(f.Tables), flagString(f)}
		want := struct {
			Kind          Kind
			Class         Class
			RO            bool
			Tables, Flags string
		}{tc.kind, tc.class, tc.ro, tc.tables, tc.flags}
		if got != want {
			t.Errorf("%q:\n got %+v\nwant %+v (err %v)", tc.sql, got, want, f.ParseErr)
		}
	}

	// Every Kind and Class is covered by the table.
	kinds := map[Kind]bool{}
	classes := map[Class]bool{}
	for _, tc := range tests {
		kinds[tc.kind] = true
		classes[tc.class] = true
	}
	for k := KindOther; k <= KindDo; k++ {
		if !kinds[k] {
			t.Errorf("no test for kind %v", k)
		}
	}
	for _, c := range []Class{ClassRead, ClassWrite, ClassDDL, ClassAdmin, ClassTransaction} {
		if !classes[c] {
			t.Errorf("no test for class %v", c)
		}
	}
}
