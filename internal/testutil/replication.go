package testutil

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Replication is a MariaDB GTID replication set started by StartReplication: a
// primary and replicas, each a separate mariadbd (server_id = port) with the binary
// log on, so that any replica can be promoted.
type Replication struct {
	// Primary is the current primary. After Promote it is the promoted server.
	Primary *MariaDB
	// Replicas are the current replicas, in start order. After Promote(i) the
	// promoted server is removed from the list (the old primary is not added).
	Replicas []*MariaDB

	t      testing.TB
	script string
}

// StartReplication starts a primary and the given number of replicas with
// hack/replication.sh, waits until every replica replicates, and stops them all
// when the test ends. Replicas run with read_only=1. Under -short it skips the test.
func StartReplication(t testing.TB, replicas int) *Replication {
	t.Helper()
	SkipShort(t)
	root := RepoRoot(t)
	r := &Replication{t: t, script: filepath.Join(root, "hack", "replication.sh")}
	start := func(cmd string, args ...string) *MariaDB {
		m, err := launch(t, r.script, cmd, args...)
		if err != nil {
			t.Fatalf("testutil: StartReplication: %v", err)
		}
		return m
	}
	r.Primary = start("start-primary")
	for i := 0; i < replicas; i++ {
		r.Replicas = append(r.Replicas, start("start-replica", strconv.Itoa(r.Primary.Port)))
	}
	r.waitRunning()
	r.WaitSynced()
	return r
}

func (r *Replication) waitRunning() {
	r.t.Helper()
	ports := []string{strconv.Itoa(r.Primary.Port)}
	for _, m := range r.Replicas {
		ports = append(ports, strconv.Itoa(m.Port))
	}
	if _, err := runScript(r.script, append([]string{"wait"}, ports...)...); err != nil {
		r.t.Fatalf("testutil: replication: %v", err)
	}
}

// query runs one query on m with a short-lived connection and returns the first
// column of the first row ("" for NULL or no row).
func query(m *MariaDB, q string) (string, error) {
	db, err := sql.Open("mysql", m.DSN("")+"?timeout=5s&multiStatements=true")
	if err != nil {
		return "", err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var v sql.NullString
	if rows.Next() {
		if err := rows.Scan(&v); err != nil {
			return "", err
		}
	}
	for rows.NextResultSet() {
	}
	return v.String, rows.Err()
}

// Query runs q on m and returns the first column of the first row ("" for NULL
// or no row); it fails the test on error.
func (r *Replication) Query(m *MariaDB, q string) string {
	r.t.Helper()
	v, err := query(m, q)
	if err != nil {
		r.t.Fatalf("testutil: %s: %q: %v", m.Addr, q, err)
	}
	return v
}

// StopSQLThread stops the SQL (applier) thread of replica i: it keeps receiving
// events but stops applying them, so it falls behind (Seconds_Behind_Master
// becomes NULL in MariaDB).
func (r *Replication) StopSQLThread(i int) {
	r.t.Helper()
	r.Query(r.Replicas[i], "STOP SLAVE SQL_THREAD")
}

// StartSQLThread starts the SQL thread of replica i again.
func (r *Replication) StartSQLThread(i int) {
	r.t.Helper()
	r.Query(r.Replicas[i], "START SLAVE SQL_THREAD")
}

// GTIDPos returns the primary's @@gtid_binlog_pos.
func (r *Replication) GTIDPos() string {
	r.t.Helper()
	return r.Query(r.Primary, "SELECT @@GLOBAL.gtid_binlog_pos")
}

// WaitSynced waits (up to 60 s) until every replica has applied everything the
// primary has written so far.
func (r *Replication) WaitSynced() {
	r.t.Helper()
	pos := r.GTIDPos()
	if pos == "" {
		return
	}
	for _, m := range r.Replicas {
		v, err := query(m, fmt.Sprintf("SELECT MASTER_GTID_WAIT('%s', 60)", pos))
		if err != nil || v != "0" {
			r.t.Fatalf("testutil: replica %s did not reach GTID %s: %q %v", m.Addr, pos, v, err)
		}
	}
}

// Promote makes replica i the primary: STOP SLAVE; RESET SLAVE ALL; SET GLOBAL
// read_only=0 on it, and points the other replicas at it (by GTID). It does
// not touch the old primary (typically killed by the test first). Afterwards
// Primary is the promoted server and Replicas are the others.
func (r *Replication) Promote(i int) {
	r.t.Helper()
	newPrimary := r.Replicas[i]
	args := []string{"promote", strconv.Itoa(newPrimary.Port)}
	var rest []*MariaDB
	for j, m := range r.Replicas {
		if j != i {
			rest = append(rest, m)
			args = append(args, strconv.Itoa(m.Port))
		}
	}
	if _, err := runScript(r.script, args...); err != nil {
		r.t.Fatalf("testutil: promote %s: %v", newPrimary.Addr, err)
	}
	r.Primary, r.Replicas = newPrimary, rest
	r.waitRunning()
}

// ServerID returns @@server_id of m (its port, for servers started here).
func (r *Replication) ServerID(m *MariaDB) int {
	r.t.Helper()
	v := r.Query(m, "SELECT @@server_id")
	id, err := strconv.Atoi(v)
	if err != nil {
		r.t.Fatalf("testutil: server_id %q: %v", v, err)
	}
	return id
}
