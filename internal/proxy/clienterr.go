package proxy

import (
	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// MariaDB Connector/C (libmariadb: the MariaDB client library, the
// libmysqlclient of MariaDB-based distributions, sysbench, the mariadb
// command-line client) refuses an ERR packet whose code is one of its own
// client error codes (CR_*: 2001–2061, CER_*: 5001–5029): it reports
// "2027 Received malformed packet" instead of the error the server sent. The
// proxy's own errors use such codes (2002 no healthy backend and pool wait
// timeout, 2013 lost backend), so a client of that library gets them under
// a server code of the same meaning, with the same message and SQLSTATE.

// isConnectorC reports whether the connect attributes (a raw lenenc
// key/value block) name MariaDB Connector/C as the client library.
func isConnectorC(attrs []byte) bool {
	for len(attrs) > 0 {
		k, _, n, err := mysql.ReadLenEncBytes(attrs)
		if err != nil {
			return false
		}
		attrs = attrs[n:]
		v, _, m, err := mysql.ReadLenEncBytes(attrs)
		if err != nil {
			return false
		}
		attrs = attrs[m:]
		if string(k) == "_client_name" {
			return string(v) == "libmariadb"
		}
	}
	return false
}

// connectorCRefuses reports the codes Connector/C refuses in an ERR packet
// (checked with libmariadb 3.3 of MariaDB 10.11: 2000, 2062, 5000 and 5030
// pass, 2001, 2061, 5001 and 5029 do not).
func connectorCRefuses(code uint16) bool {
	return code > 2000 && code < 2062 || code > 5000 && code < 5030
}

// forConnectorC returns me with a code Connector/C accepts: 2002 and 2003
// (no backend could serve the statement: none healthy, the pool's wait
// timed out) become 1040 (ER_CON_COUNT_ERROR, too many connections), 2006
// and 2013 (the backend connection was lost) 1317 (ER_QUERY_INTERRUPTED),
// any other client code 1105 (ER_UNKNOWN_ERROR).
func forConnectorC(me *mysql.Error) *mysql.Error {
	if !connectorCRefuses(me.Code) {
		return me
	}
	out := *me
	switch me.Code {
	case mysql.ErrCodeConnectionError, 2003:
		out.Code = mysql.ErrCodeTooManyConnections
	case mysql.ErrCodeServerGone, mysql.ErrCodeServerLost:
		out.Code = mysql.ErrCodeQueryInterrupted
	default:
		out.Code = mysql.ErrCodeUnknown
	}
	return &out
}
