package proxy

import (
	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// COM_REFRESH (FLUSH …) and COM_DEBUG (server debug dump to its error log)
// act on the whole backend server, with the privileges of the proxy's
// backend account. They are forwarded to the writer for users the access
// rules allow the "admin" kind (users without access rules); others get the
// server's privilege error.
func (s *session) handleAdminCommand(p []byte) error {
	cmd := p[0]
	if ch := s.l.rt.Load().chain; !ch.AllowsAdmin(s.user) {
		priv := "RELOAD"
		if cmd == mysql.ComDebug {
			priv = "SUPER"
		}
		return s.sendError(mysql.NewError(1227, "42000",
			"Access denied; you need (at least one of) the %s privilege(s) for this operation", priv))
	}
	if cmd == mysql.ComRefresh && len(p) < 2 {
		return s.sendError(mysql.NewError(mysql.ErrCodeNetReadError, "08S01", "Got an error reading communication packets"))
	}
	s.routeToWriter(&s.cmd)
	return s.forward(p, cmd, (*session).relayAdmin)
}

// relayAdmin forwards the one-packet response of COM_REFRESH or COM_DEBUG:
// OK, ERR, or EOF (COM_DEBUG), converted for CLIENT_DEPRECATE_EOF.
func (s *session) relayAdmin() (result, error) {
	var r result
	p, err := s.readBackendResult()
	if err != nil {
		return r, err
	}
	r.sent = true
	switch {
	case mysql.IsEOF(p):
		return r, s.writeEOF(p, &r, true)
	case p[0] == mysql.OKHeader:
		return r, s.relayOK(p, &r)
	case p[0] == mysql.ERRHeader:
		return r, s.relayErr(p, &r)
	}
	return r, s.writeClient(p)
}
