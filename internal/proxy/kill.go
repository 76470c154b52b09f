package proxy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
)

// KILL never reaches a backend as the client wrote it: the ids a client
// knows are the proxy's, and the backend threads belong to the pool. The
// proxy runs KILL itself, also inside a multi-statement text, where the
// statements around it go to the backend in groups and the results are
// joined as one response (SERVER_MORE_RESULTS_EXISTS on every result but
// the last, and the first error ends the text, as on the server).

// killStmt is a parsed KILL statement.
type killStmt struct {
	id        uint64 // connection id, or query id when byQueryID
	query     bool   // KILL QUERY: the running statement only
	byQueryID bool   // KILL QUERY ID n
	hard      bool   // not KILL SOFT
}

// killParse results.
const (
	killOK = iota
	killUnsupported
	killIDColumn // "KILL [CONNECTION] ID n": MariaDB reads ID as a column
)

// parseKillStmt parses one statement (without its ';') "KILL [HARD|SOFT]
// [CONNECTION|QUERY [ID]] target", where target is a number or
// CONNECTION_ID() (the session's own id, self).
func parseKillStmt(q []byte, self uint32) (k killStmt, res int) {
	k.hard = true
	rest := q[skipSpaceAndComments(q)+len("KILL"):]
	next := func(kw string) bool {
		if hasKeyword(rest, kw) {
			rest = rest[skipSpaceAndComments(rest)+len(kw):]
			return true
		}
		return false
	}
	if next("SOFT") {
		k.hard = false
	} else {
		next("HARD")
	}
	if next("QUERY") {
		k.query = true
		k.byQueryID = next("ID")
	} else {
		next("CONNECTION")
	}
	if !k.byQueryID && hasKeyword(rest, "ID") {
		return k, killIDColumn
	}
	j := skipSpaceAndComments(rest)
	rest = rest[j:]
	n := 0
	switch {
	case len(rest) > 0 && '0' <= rest[0] && rest[0] <= '9':
		for n < len(rest) && '0' <= rest[n] && rest[n] <= '9' {
			n++
		}
		v, err := strconv.ParseUint(string(rest[:n]), 10, 64)
		if err != nil {
			return k, killUnsupported
		}
		k.id = v
	case indexFold(rest, "CONNECTION_ID") == 0:
		// By hand: skipSpaceAndComments also skips '('.
		n = len("CONNECTION_ID")
		for n < len(rest) && isSpace(rest[n]) {
			n++
		}
		if n >= len(rest) || rest[n] != '(' {
			return k, killUnsupported
		}
		n++
		for n < len(rest) && isSpace(rest[n]) {
			n++
		}
		if n >= len(rest) || rest[n] != ')' {
			return k, killUnsupported
		}
		n++
		k.id = uint64(self)
	default:
		return k, killUnsupported
	}
	tail := rest[n:]
	if skipSpaceAndComments(tail) != len(tail) {
		return k, killUnsupported
	}
	return k, killOK
}

// splitStatements returns the statements of a multi-statement text, split
// at ';' outside quotes and comments (the ';' excluded). Statements holding
// only space and comments are left out.
func splitStatements(q []byte) [][]byte {
	var out [][]byte
	start := 0
	add := func(end int) {
		st := q[start:end]
		if skipSpaceAndComments(st) < len(st) {
			out = append(out, st)
		}
	}
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		if quote != 0 {
			if c == '\\' && quote != '`' {
				i++
			} else if c == quote {
				quote = 0
			}
			continue
		}
		switch {
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '#' || (c == '-' && i+2 < len(q) && q[i+1] == '-' && isSpace(q[i+2])):
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(q) && q[i+1] == '*' && !(i+2 < len(q) && (q[i+2] == '!' || q[i+2] == 'M')):
			end := indexFold(q[i+2:], "*/")
			if end < 0 {
				i = len(q)
				break
			}
			i += 2 + end + 1
		case c == ';':
			add(i)
			start = i + 1
		}
	}
	if start < len(q) {
		add(len(q))
	}
	return out
}

// handleKillText runs a COM_QUERY text holding KILL statements. It reports
// false when the text has none (the caller runs it as usual).
func (s *session) handleKillText(p []byte) (bool, error) {
	q := p[1:]
	stmts := splitStatements(q)
	hasKill := false
	for _, st := range stmts {
		if isKill(st) {
			hasKill = true
			break
		}
	}
	if !hasKill {
		return false, nil
	}
	if len(stmts) > 1 && !s.state.MultiStatements {
		// The server reads it as one statement: a syntax error, and
		// nothing runs.
		return false, nil
	}
	// Groups of statements between KILLs go to the backend as one text.
	i := 0
	for i < len(stmts) {
		if isKill(stmts[i]) {
			more := i+1 < len(stmts)
			if stop, err := s.runKill(stmts[i], more); stop || err != nil {
				return true, err
			}
			i++
			continue
		}
		j := i
		for j < len(stmts) && !isKill(stmts[j]) {
			j++
		}
		// The group's text as written (from its first statement to the
		// end of its last), so that the server reports errors as usual.
		first, last := stmts[i], stmts[j-1]
		start := cap(q) - cap(first)
		end := cap(q) - cap(last) + len(last)
		text := append([]byte{mysql.ComQuery}, q[start:end]...)
		s.moreFollows = j < len(stmts)
		s.errSent = false
		err := s.runQuery(s.begin(), text) // each group is a statement of its own
		s.moreFollows = false
		if err != nil || s.errSent {
			return true, err
		}
		i = j
	}
	return true, nil
}

// runKill runs one KILL statement of a text; more says results follow. It
// reports whether the text ends here (an error was sent).
func (s *session) runKill(q []byte, more bool) (stop bool, err error) {
	k, res := parseKillStmt(q, s.id)
	switch res {
	case killIDColumn:
		return true, s.sendError(mysql.NewError(1054, "42S22", "Unknown column 'id' in 'KILL'"))
	case killUnsupported:
		// Never forward KILL: the backend would take the id (or an
		// expression, or KILL USER) as its own threads, which belong to
		// other clients and to the pool.
		return true, s.sendError(mysql.NewError(1235, "42000",
			"pisa-proxy supports only KILL [HARD|SOFT] [CONNECTION|QUERY [ID]] <number or CONNECTION_ID()>"))
	}
	var kerr *mysql.Error
	if k.byQueryID {
		kerr = s.killQueryID(k)
	} else {
		kerr = s.killConn(k)
	}
	if kerr != nil {
		if kerr.Code == 1927 {
			// The session killed itself: the error, then the connection
			// closes, as the server does.
			_ = s.sendError(kerr)
			s.killed.Store(true)
			return true, nil
		}
		return true, s.sendError(kerr)
	}
	status := s.status
	if more {
		status |= mysql.StatusMoreResultsExists
	}
	s.scratch = mysql.AppendOK(s.scratch[:0], mysql.OKHeader, &mysql.OK{Status: status}, s.caps)
	if err := s.client.WritePacketFlush(s.scratch); err != nil {
		return true, fmt.Errorf("%w: %w", errClientWrite, err)
	}
	return false, nil
}

// killConn runs KILL [QUERY|CONNECTION] for a proxy connection id: the
// target session's running statement is killed on its backend, and for
// CONNECTION its client connection is closed.
func (s *session) killConn(k killStmt) *mysql.Error {
	if k.id > 0xffffffff {
		return mysql.NewError(mysql.ErrCodeNoSuchThread, "HY000", "Unknown thread id: %d", k.id)
	}
	id := uint32(k.id)
	target := s.l.proxy.sessions.get(id)
	if target == nil {
		return mysql.NewError(mysql.ErrCodeNoSuchThread, "HY000", "Unknown thread id: %d", id)
	}
	if target.user != s.user || target.rt.name != s.rt.name {
		return mysql.NewError(mysql.ErrCodeKillDenied, "HY000", "You are not owner of thread %d", id)
	}
	if target == s {
		// The KILL statement is the session's running statement.
		if k.query {
			return mysql.NewError(1317, "70100", "Query execution was interrupted")
		}
		return mysql.NewError(1927, "70100", "Connection was killed")
	}
	if c := target.active.Load(); c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.Pool.KillThread(ctx, c.Info.ConnectionID, true, k.hard)
		cancel()
		if err != nil {
			s.logger.Info("kill backend query failed", "target", id, "error", err)
		}
	}
	if !k.query {
		target.killed.Store(true)
		_ = target.client.TCPConn().Close()
	}
	return nil
}

// killQueryID runs KILL QUERY ID n: n is a backend query id (as
// information_schema.PROCESSLIST shows it). The query is killed when it
// runs on the backend connection of a session of the same user of this
// listener; any other query id is unknown to the client.
func (s *session) killQueryID(k killStmt) *mysql.Error {
	unknown := mysql.NewError(1957, "HY000", "Unknown query id: %d", k.id)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	seen := map[*backend.Pool]bool{}
	for _, target := range s.l.proxy.sessions.all() {
		c := target.active.Load()
		if c == nil || seen[c.Pool] {
			continue
		}
		seen[c.Pool] = true
		thread, found, err := c.Pool.ThreadOfQuery(ctx, k.id)
		if err != nil {
			s.logger.Warn("looking up a query id failed", "query_id", k.id, "error", err)
			continue
		}
		if !found {
			continue
		}
		owner := s.l.proxy.sessions.byBackendThread(c.Pool, thread)
		if owner == nil {
			return unknown
		}
		if owner.user != s.user || owner.rt.name != s.rt.name {
			return mysql.NewError(1979, "HY000", "You are not owner of query %d", k.id)
		}
		if owner == s {
			return mysql.NewError(1317, "70100", "Query execution was interrupted")
		}
		if err := c.Pool.KillQueryID(ctx, k.id, k.hard); err != nil {
			var me *mysql.Error
			if errors.As(err, &me) && me.Code == 1957 {
				return unknown // it ended meanwhile
			}
			s.logger.Warn("kill query id failed", "query_id", k.id, "error", err)
		}
		return nil
	}
	return unknown
}

// all returns the open sessions.
func (r *registry) all() []*session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*session, 0, len(r.m))
	for _, s := range r.m {
		out = append(out, s)
	}
	return out
}

// byBackendThread returns the session running a statement on backend
// thread id of pool pl.
func (r *registry) byBackendThread(pl *backend.Pool, id uint32) *session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, s := range r.m {
		if c := s.active.Load(); c != nil && c.Pool == pl && c.Info.ConnectionID == id {
			return s
		}
	}
	return nil
}
