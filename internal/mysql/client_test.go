package mysql

import (
	"net"
	"os"
	"testing"
	"time"
)

func testBackendAddr() string {
	if a := os.Getenv("PISA_TEST_MYSQL_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:3306"
}

func dialBackend(t *testing.T, cfg *ClientConfig) (*Conn, *ServerInfo) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: this test needs MariaDB (make test runs it)")
	}
	nc, err := net.DialTimeout("tcp", testBackendAddr(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial MariaDB at %s: %v", testBackendAddr(), err)
	}
	c := NewConn(nc)
	si, err := ClientHandshake(c, cfg)
	if err != nil {
		nc.Close()
		t.Fatalf("handshake: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, si
}

func TestClientHandshakeAndQuery(t *testing.T) {
	c, si := dialBackend(t, &ClientConfig{User: "root", DB: "test", ExtCaps: MariaDBClientStmtBulkOps})
	if si.ConnectionID == 0 || si.ServerVersion == "" {
		t.Fatalf("bad server info %+v", si)
	}
	if si.Capabilities&ClientSessionTrack == 0 {
		t.Fatalf("session track not negotiated: %x", si.Capabilities)
	}
	c.ResetSeq()
	if err := c.WritePacketFlush(append([]byte{ComQuery}, "SELECT 1, DATABASE()"...)); err != nil {
		t.Fatal(err)
	}
	// column count, 2 column defs, EOF, 1 row, EOF
	var kinds []byte
	for i := 0; i < 6; i++ {
		p, err := c.ReadPacket()
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, p[0])
		if i == 4 {
			v, _, n, err := ReadLenEncBytes(p)
			if err != nil || string(v) != "1" {
				t.Fatalf("row col1 = %q %v", v, err)
			}
			db, _, _, _ := ReadLenEncBytes(p[n:])
			if string(db) != "test" {
				t.Fatalf("DATABASE() = %q", db)
			}
		}
	}
	if kinds[0] != 2 || kinds[3] != EOFHeader || kinds[5] != EOFHeader {
		t.Fatalf("unexpected packet kinds %v", kinds)
	}
}

func TestClientHandshakeBadPassword(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test needs MariaDB (make test runs it)")
	}
	nc, err := net.Dial("tcp", testBackendAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_, err = ClientHandshake(NewConn(nc), &ClientConfig{User: "root", Password: "definitely-wrong"})
	me, ok := err.(*Error)
	if !ok || me.Code != ErrCodeAccessDenied {
		t.Fatalf("want 1045, got %v", err)
	}
}

func TestSessionTrackingReportsChanges(t *testing.T) {
	c, si := dialBackend(t, &ClientConfig{User: "root", DB: "test"})
	run := func(q string) OK {
		t.Helper()
		c.ResetSeq()
		if err := c.WritePacketFlush(append([]byte{ComQuery}, q...)); err != nil {
			t.Fatal(err)
		}
		p, err := c.ReadPacket()
		if err != nil {
			t.Fatal(err)
		}
		if p[0] == ERRHeader {
			t.Fatalf("%s: %v", q, ParseErr(p))
		}
		ok, err := ParseOK(p, si.Capabilities)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	run("SET SESSION session_track_system_variables='*', session_track_state_change=ON, session_track_schema=ON")
	ok := run("SET SESSION sql_mode='ANSI_QUOTES'")
	got := map[string]string{}
	if err := ParseSessionState(ok.SessionState, func(ch SessionChange) {
		if ch.Type == SessionTrackSystemVariables {
			got[ch.Name] = ch.Value
		}
	}); err != nil {
		t.Fatal(err)
	}
	if got["sql_mode"] != "ANSI_QUOTES" {
		t.Fatalf("tracked vars %v", got)
	}
	ok = run("SET @x = 1")
	state := false
	_ = ParseSessionState(ok.SessionState, func(ch SessionChange) {
		if ch.Type == SessionTrackStateChange {
			state = true
		}
	})
	if !state {
		t.Fatalf("user variable not reported as state change: %+v", ok)
	}
	ok = run("USE mysql")
	schema := ""
	_ = ParseSessionState(ok.SessionState, func(ch SessionChange) {
		if ch.Type == SessionTrackSchema {
			schema = ch.Name
		}
	})
	if schema != "mysql" {
		t.Fatalf("schema change not tracked: %q", schema)
	}
}
