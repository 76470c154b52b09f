package proxy

import (
	"context"
	"errors"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
)

// With backend_accounts on, clients log in with the backend's own accounts,
// as MaxScale does: the proxy reads the account list and the
// mysql_native_password hashes from the backend (mysql.user), verifies a
// client's scramble against the stored hash, and reads the list again when
// a login fails (at most once a second), so that a user created a moment
// ago can log in. The verified scramble yields SHA1(password), with which
// the proxy logs in to the backend as that account: the client's
// statements run with its own privileges, on connections of its own.

// accountsRefreshEvery bounds how often failed logins read the list again.
const accountsRefreshEvery = time.Second

const accountsSQL = "SELECT User, Host, plugin, authentication_string, Password FROM mysql.user"

// dbAccount is one row of mysql.user with a mysql_native_password hash.
type dbAccount struct {
	user, host string
	stage2     []byte // nil: no password
}

// accountStore is a listener's copy of the backend's accounts.
type accountStore struct {
	pools []*backend.Pool

	mu       sync.Mutex
	accounts []dbAccount // in MariaDB's matching order (see sortAccounts)
	loaded   time.Time   // when the last read started
	gen      uint64      // reads so far
	loadErr  error
}

// load reads the accounts from the first backend that answers.
func (st *accountStore) load() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var lastErr error = errNoBackend
	for _, pl := range st.pools {
		c, err := pl.Get(ctx, backend.Variant{})
		if err != nil {
			lastErr = err
			continue
		}
		var list []dbAccount
		err = c.QueryRows(accountsSQL, func(row []string) {
			if len(row) != 5 {
				return
			}
			plugin, hash := row[2], row[3]
			if plugin != "" && plugin != mysql.AuthNativePassword {
				return // other plugins are not supported
			}
			if hash == "" {
				hash = row[4]
			}
			stage2, ok := mysql.ParseNativeHash(hash)
			if !ok {
				return // "invalid" and the like: nobody logs in with it
			}
			list = append(list, dbAccount{user: row[0], host: strings.ToLower(row[1]), stage2: stage2})
		})
		pl.Put(c)
		if err != nil {
			lastErr = err
			continue
		}
		sortAccounts(list)
		st.accounts = list
		return nil
	}
	return lastErr
}

// verify checks a mysql_native_password response of user from clientIP
// against the account MariaDB would pick. When that fails, the accounts are
// read again (at most once per accountsRefreshEvery: a failed login may wait
// for the next reload) and checked once more. It returns the client's
// SHA1(password).
func (st *accountStore) verify(user string, clientIP net.IP, salt, response []byte) (stage1 []byte, ok bool, err error) {
	check := func() ([]byte, bool) {
		for i := range st.accounts {
			a := &st.accounts[i]
			if a.user != user || !hostMatches(a.host, clientIP) {
				continue
			}
			// The first matching account decides, as in MariaDB.
			return mysql.CheckNativeHash(salt, response, a.stage2)
		}
		return nil, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.gen == 0 {
		st.reload()
	}
	if stage1, ok := check(); ok {
		return stage1, true, nil
	}
	gen := st.gen
	if wait := accountsRefreshEvery - time.Since(st.loaded); wait > 0 {
		st.mu.Unlock()
		time.Sleep(wait)
		st.mu.Lock()
	}
	if st.gen == gen {
		// Nobody read the list since our check.
		st.reload()
	}
	if stage1, ok := check(); ok {
		return stage1, true, nil
	}
	return nil, false, st.loadErr
}

func (st *accountStore) reload() {
	st.loaded = time.Now()
	st.gen++
	st.loadErr = st.load()
}

// sortAccounts orders accounts as MariaDB matches them: hosts without
// wildcards first, then patterns (longer first), then "%".
func sortAccounts(list []dbAccount) {
	rank := func(h string) int {
		switch {
		case h == "%" || h == "":
			return 2
		case strings.ContainsAny(h, "%_"):
			return 1
		}
		return 0
	}
	sort.SliceStable(list, func(i, j int) bool {
		ri, rj := rank(list[i].host), rank(list[j].host)
		if ri != rj {
			return ri < rj
		}
		return len(list[i].host) > len(list[j].host)
	})
}

// hostMatches matches an account's host against the client's address:
// "%" and LIKE patterns (% and _), IP addresses, "ip/netmask" and
// "localhost" (the loopback addresses). Host names are not resolved.
func hostMatches(pattern string, ip net.IP) bool {
	if ip == nil {
		return pattern == "%" || pattern == ""
	}
	if pattern == "localhost" {
		return ip.IsLoopback()
	}
	if i := strings.IndexByte(pattern, '/'); i > 0 {
		base, mask := net.ParseIP(pattern[:i]), net.ParseIP(pattern[i+1:])
		if base == nil || mask == nil || base.To4() == nil || mask.To4() == nil || ip.To4() == nil {
			return false
		}
		m := net.IPMask(mask.To4())
		return ip.To4().Mask(m).Equal(base.To4().Mask(m))
	}
	s := ip.String()
	if v4 := ip.To4(); v4 != nil {
		s = v4.String()
	}
	return likeMatch(pattern, s)
}

// likeMatch is SQL LIKE with % and _ (no escapes), case-insensitive input
// already lower-cased.
func likeMatch(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '%':
			for len(p) > 0 && p[0] == '%' {
				p = p[1:]
			}
			if p == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if likeMatch(p, s[i:]) {
					return true
				}
			}
			return false
		case '_':
			if s == "" {
				return false
			}
		default:
			if s == "" || s[0] != p[0] {
				return false
			}
		}
		p, s = p[1:], s[1:]
	}
	return s == ""
}

// verifyNative is the session's ServerConfig.VerifyNative: a login of a
// user the listener does not configure, against the backend's accounts.
func (s *session) verifyNative(info *mysql.HandshakeInfo, response []byte) bool {
	st := s.rt.accounts
	if st == nil {
		return false
	}
	var ip net.IP
	if ta, ok := s.client.TCPConn().RemoteAddr().(*net.TCPAddr); ok {
		ip = ta.IP
	}
	stage1, ok, err := st.verify(info.User, ip, info.Salt, response)
	if err != nil && !errors.Is(err, errNoBackend) {
		s.logger.Warn("reading the backend's accounts failed", "error", err)
	}
	if !ok {
		return false
	}
	s.pendingAccount = &backend.Account{User: info.User, SHA1: stage1}
	return true
}

// verifyNativeFunc returns the ServerConfig.VerifyNative of the session's
// listener (nil without backend_accounts).
func (s *session) verifyNativeFunc() func(*mysql.HandshakeInfo, []byte) bool {
	if s.rt.accounts == nil {
		return nil
	}
	return s.verifyNative
}
