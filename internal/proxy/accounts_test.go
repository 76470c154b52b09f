package proxy

import (
	"fmt"
	"net"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// With backend_accounts, accounts created on the backend log in through the
// proxy (also created after it started, and with COM_CHANGE_USER), and
// their statements run as those accounts: a client sees what it sees
// logging in to MariaDB directly with the same account.
func TestBackendAccounts(t *testing.T) {
	srv := testutil.StartMariaDB(t)
	srv.Exec(t, "CREATE USER 'pisa_app'@'%' IDENTIFIED BY 'app-secret'")
	srv.Exec(t, "GRANT SELECT, INSERT, CREATE, DROP ON test.* TO 'pisa_app'@'%'")
	srv.Exec(t, "CREATE USER 'pisa_nopw'@'127.0.0.1'")
	srv.Exec(t, "GRANT SELECT ON test.* TO 'pisa_nopw'@'127.0.0.1'")
	srv.Exec(t, "CREATE USER 'pisa_local'@'10.9.9.9' IDENTIFIED BY 'x'")
	srv.Exec(t, "CREATE TABLE test.acct_t (a INT)")
	cfg := baseConfig(srv.Addr)
	cfg.Proxy.Config[0].BackendAccounts = true
	cfg.Proxy.Config[0].Access = &proxyconfig.Access{Users: []proxyconfig.AccessUser{{User: "pisa_ro", Kinds: []string{"read"}}}}
	tp := startProxy(t, cfg)

	both := func(user, password, q string) (proxy, direct string) {
		t.Helper()
		run := func(addr string) string {
			db := openDB(t, fmt.Sprintf("%s:%s@tcp(%s)/test", user, password, addr))
			rows, err := db.Query(q)
			if err != nil {
				return fmt.Sprintf("error %d", mysqlErrCode(err))
			}
			defer rows.Close()
			var out string
			for rows.Next() {
				var v string
				if err := rows.Scan(&v); err != nil {
					t.Fatal(err)
				}
				out += v + ";"
			}
			return out
		}
		return run(tp.addr), run(srv.Addr)
	}
	for _, tc := range []struct{ user, password, q string }{
		{"pisa_app", "app-secret", "SELECT CURRENT_USER()"},
		{"pisa_app", "app-secret", "SELECT COUNT(*) FROM test.acct_t"},
		{"pisa_app", "app-secret", "SELECT COUNT(*) FROM mysql.user"}, // no privilege: 1142
		{"pisa_app", "wrong", "SELECT 1"},                             // 1045
		{"pisa_nopw", "", "SELECT CURRENT_USER()"},
		{"pisa_local", "x", "SELECT 1"}, // another host only: 1045
		{"nobody", "x", "SELECT 1"},
	} {
		p, d := both(tc.user, tc.password, tc.q)
		if p != d {
			t.Errorf("%s/%s %s: proxy %q, direct %q", tc.user, tc.password, tc.q, p, d)
		}
	}
	// An account created while the proxy runs logs in at once.
	srv.Exec(t, "CREATE USER 'pisa_new'@'%' IDENTIFIED BY 'n'")
	srv.Exec(t, "GRANT SELECT ON test.* TO 'pisa_new'@'%'")
	if p, d := both("pisa_new", "n", "SELECT CURRENT_USER()"); p != d || p != "pisa_new@%;" {
		t.Errorf("new account: proxy %q, direct %q", p, d)
	}
	// Access rules apply by user: pisa_ro is a backend account restricted
	// to reads by the proxy.
	srv.Exec(t, "CREATE USER 'pisa_ro'@'%' IDENTIFIED BY 'ro'")
	srv.Exec(t, "GRANT ALL ON test.* TO 'pisa_ro'@'%'")
	if p, _ := both("pisa_ro", "ro", "SELECT COUNT(*) FROM test.acct_t"); p != "0;" {
		t.Errorf("restricted backend account, read: %q", p)
	}
	db := openDB(t, fmt.Sprintf("pisa_ro:ro@tcp(%s)/test", tp.addr))
	if _, err := db.Exec("INSERT INTO acct_t VALUES (1)"); mysqlErrCode(err) == 0 {
		t.Errorf("restricted backend account could write")
	}

	// COM_CHANGE_USER from the listener's account to a backend account and
	// back, on the proxy and directly.
	changeUser := func(pc *pconn, user, password string) *mysql.Error {
		t.Helper()
		pkt := []byte{mysql.ComChangeUser}
		pkt = append(pkt, user...)
		pkt = append(pkt, 0)
		auth := mysql.ScrambleNative(pc.salt, password)
		pkt = append(pkt, byte(len(auth)))
		pkt = append(pkt, auth...)
		pkt = append(pkt, "test"...)
		pkt = append(pkt, 0, mysql.DefaultCollationID, 0)
		pkt = append(pkt, mysql.AuthNativePassword...)
		pkt = append(pkt, 0)
		p := pc.cmd(t, pkt)
		for p[0] == mysql.AuthSwitchRequest {
			i := 1
			for p[i] != 0 {
				i++
			}
			pc.salt = append([]byte(nil), p[i+1:]...)
			if n := len(pc.salt); n > 0 && pc.salt[n-1] == 0 {
				pc.salt = pc.salt[:n-1]
			}
			if err := pc.c.WritePacketFlush(mysql.ScrambleNative(pc.salt, password)); err != nil {
				t.Fatal(err)
			}
			p = pc.read(t)
		}
		if p[0] == mysql.ERRHeader {
			return mysql.ParseErr(p)
		}
		return nil
	}
	for _, side := range []struct{ addr, user, password string }{{tp.addr, "proxy", "proxypass"}, {srv.Addr, "root", ""}} {
		pc, err := pdial(t, side.addr, pcOpts{user: side.user, password: side.password, db: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if err := changeUser(pc, "pisa_app", "app-secret"); err != nil {
			t.Fatalf("%s: COM_CHANGE_USER to pisa_app: %v", side.addr, err)
		}
		if u := pc.scalar(t, "SELECT CURRENT_USER()"); u != "pisa_app@%" {
			t.Errorf("%s: after COM_CHANGE_USER: %q", side.addr, u)
		}
		if err := changeUser(pc, "pisa_app", "bad"); err == nil || err.Code != 1045 {
			t.Errorf("%s: COM_CHANGE_USER with a wrong password: %v", side.addr, err)
		}
	}
}

func TestAccountHostMatching(t *testing.T) {
	ip := net.ParseIP("192.168.1.20")
	for pattern, want := range map[string]bool{
		"%": true, "192.168.1.%": true, "192.168.1.2_": true, "192.168.1.2": false,
		"192.168.1.20": true, "192.168.1.0/255.255.255.0": true, "192.168.2.0/255.255.255.0": false,
		"localhost": false, "10.%": false,
	} {
		if got := hostMatches(pattern, ip); got != want {
			t.Errorf("hostMatches(%q, %s) = %v", pattern, ip, got)
		}
	}
	if !hostMatches("localhost", net.ParseIP("127.0.0.1")) {
		t.Error("localhost does not match 127.0.0.1")
	}
	list := []dbAccount{{user: "u", host: "%"}, {user: "u", host: "10.%"}, {user: "u", host: "10.1.1.1"}}
	sortAccounts(list)
	if list[0].host != "10.1.1.1" || list[1].host != "10.%" || list[2].host != "%" {
		t.Errorf("order: %v", list)
	}
}
