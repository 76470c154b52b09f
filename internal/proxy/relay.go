package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/route"
)

// errClientWrite marks a failure to write to the client: the backend
// connection is mid-response and cannot be reused.
var errClientWrite = errors.New("write to client failed")

// backendReadError marks a failure to read from the backend.
type backendReadError struct{ err error }

func (e *backendReadError) Error() string { return "read from backend: " + e.err.Error() }
func (e *backendReadError) Unwrap() error { return e.err }

// result summarizes a relayed response.
type result struct {
	status   uint16
	sent     bool // at least one packet went to the client
	err      *mysql.Error
	rows     int64
	affected uint64
	// stateChanged is set when an OK reported an unreplayable session state
	// change (user variables, temporary tables...).
	stateChanged bool
}

func (s *session) clientDeprecateEOF() bool { return s.caps&mysql.ClientDeprecateEOF != 0 }

// flushIfIdle sends buffered client output when the backend has nothing
// buffered, i.e. before we would block waiting for it.
func (s *session) flushIfIdle() error {
	if s.be.Buffered() == 0 {
		if err := s.client.Flush(); err != nil {
			return fmt.Errorf("%w: %w", errClientWrite, err)
		}
	}
	return nil
}

func (s *session) writeClient(p []byte) error {
	if s.txl.hashing {
		// Transaction replay: a checksum of what the client gets.
		_, _ = s.txl.h.Write(p)
		if s.txl.replaying {
			return nil
		}
	}
	if err := s.client.WritePacket(p); err != nil {
		return fmt.Errorf("%w: %w", errClientWrite, err)
	}
	return nil
}

func (s *session) readBackend() ([]byte, error) {
	if err := s.flushIfIdle(); err != nil {
		return nil, err
	}
	p, err := s.be.ReadPacket()
	if err != nil {
		return nil, &backendReadError{err}
	}
	return p, nil
}

// relayOK forwards an OK packet (header 0x00), applying session state.
func (s *session) relayOK(p []byte, r *result) error {
	ok, err := mysql.ParseOK(p, s.be.Info.Capabilities)
	if err != nil {
		return &backendReadError{fmt.Errorf("bad OK packet: %w", err)}
	}
	s.observeOK(&ok, r)
	r.affected += ok.AffectedRows
	same := true // the client gets the backend's bytes
	if s.moreFollows && ok.Status&mysql.StatusMoreResultsExists == 0 {
		// More results of the client's text follow (kill.go).
		ok.Status |= mysql.StatusMoreResultsExists
		same = false
	}
	if ok.Status&mysql.StatusSessionStateChange != 0 {
		switch {
		case s.caps&mysql.ClientSessionTrack == 0:
			same = false // AppendOK leaves the block out
		case s.track.known:
			// Only what the client's own trackers report.
			s.trackBuf = s.filterSessionState(s.trackBuf[:0], ok.SessionState)
			if len(s.trackBuf) != len(ok.SessionState) {
				ok.SessionState = s.trackBuf
				if len(s.trackBuf) == 0 {
					ok.Status &^= mysql.StatusSessionStateChange
				}
				same = false
			}
		}
	}
	if same {
		return s.writeClient(p)
	}
	s.scratch = mysql.AppendOK(s.scratch[:0], mysql.OKHeader, &ok, s.caps)
	return s.writeClient(s.scratch)
}

func (s *session) observeOK(ok *mysql.OK, r *result) {
	r.status = ok.Status
	s.status = ok.Status & persistentStatus
	if s.causal != nil {
		// A statement wrote if its facts say so, or if the server reports
		// the GTID of a transaction it committed.
		_, hasGTID := route.LastGTID(ok.SessionState)
		if s.cmd.write || hasGTID {
			s.causal.ObserveOK(ok, true, time.Now())
		}
	}
	if ok.Status&mysql.StatusSessionStateChange != 0 && len(ok.SessionState) > 0 {
		s.be.ObserveOK(ok)
		if s.state.ApplyOK(ok) {
			r.stateChanged = true
		}
	}
}

// relayEnd handles the EOF that ends a row stream (or a column list when
// withRows is false and the client still expects it).
func (s *session) writeEOF(p []byte, r *result, final bool) error {
	warnings, status := mysql.ParseEOF(p)
	r.status = status
	s.status = status & persistentStatus
	more := s.moreFollows && status&mysql.StatusMoreResultsExists == 0
	if more {
		status |= mysql.StatusMoreResultsExists // more results of the client's text follow
	}
	if !s.clientDeprecateEOF() {
		if more || status&mysql.StatusSessionStateChange != 0 && (s.caps&mysql.ClientSessionTrack == 0 || (s.track.known && !s.track.state)) {
			// The backend's trackers are not the client's.
			s.scratch = mysql.AppendEOF(s.scratch[:0], warnings, status)
			return s.writeClient(s.scratch)
		}
		return s.writeClient(p)
	}
	if !final {
		return nil // dropped under CLIENT_DEPRECATE_EOF
	}
	s.scratch = mysql.AppendOK(s.scratch[:0], mysql.EOFHeader, &mysql.OK{Status: status, Warnings: warnings}, s.caps)
	return s.writeClient(s.scratch)
}

// relayColumnDefs forwards n column definitions and the EOF after them.
// It returns the status of that EOF. With keep, copies of the definitions
// as the backend sent them are appended to it (the prepare metadata cache).
func (s *session) relayColumnDefs(n uint64, r *result, finalEOF bool, keep *[][]byte) error {
	convert := s.extMetaMismatch()
	for i := uint64(0); i < n; i++ {
		p, err := s.readBackend()
		if err != nil {
			return err
		}
		if p[0] == mysql.ERRHeader {
			return s.relayErr(p, r)
		}
		if keep != nil {
			*keep = append(*keep, bytes.Clone(p))
		}
		if convert {
			p = s.convertColumnDef(p)
		}
		if err := s.writeClient(p); err != nil {
			return err
		}
	}
	p, err := s.readBackend()
	if err != nil {
		return err
	}
	if !mysql.IsEOF(p) {
		if p[0] == mysql.ERRHeader {
			return s.relayErr(p, r)
		}
		return &backendReadError{fmt.Errorf("expected EOF after column definitions, got 0x%02x", p[0])}
	}
	return s.writeEOF(p, r, finalEOF)
}

func (s *session) relayErr(p []byte, r *result) error {
	r.err = mysql.ParseErr(p)
	if !r.sent && s.serverLeaving(r.err) {
		// Failover: the server is going away (shutdown, killed
		// connection) and the statement was interrupted: a lost
		// connection, which may be retried or replayed.
		err := fmt.Errorf("server closed the connection after ERR %d: %s", r.err.Code, r.err.Message)
		r.err = nil
		return &backendReadError{err}
	}
	s.errSent = true
	r.status &^= mysql.StatusMoreResultsExists
	return s.writeClient(p)
}

// relayRows streams rows until the closing EOF or ERR.
func (s *session) relayRows(r *result) error {
	continued := false
	for {
		if err := s.flushIfIdle(); err != nil {
			return err
		}
		n, first, err := s.be.NextPacket()
		if err != nil {
			return &backendReadError{err}
		}
		if !continued && n < 9 && first == mysql.EOFHeader {
			p, err := s.be.ReadBody(n)
			if err != nil {
				return &backendReadError{err}
			}
			return s.writeEOF(p, r, true)
		}
		if !continued && first == mysql.ERRHeader {
			p, err := s.be.ReadBody(n)
			if err != nil {
				return &backendReadError{err}
			}
			return s.relayErr(p, r)
		}
		if s.txl.hashing {
			err = s.copyRowHashed(n)
		} else {
			err = s.be.CopyBody(s.client, n)
		}
		if err != nil {
			var be *backendReadError
			if errors.Is(err, errClientWrite) || errors.As(err, &be) {
				return err
			}
			return fmt.Errorf("%w: %w", errClientWrite, err)
		}
		if !continued {
			r.rows++
		}
		continued = n == mysql.MaxPayload
	}
}

// relayResults forwards the response to COM_QUERY / COM_STMT_EXECUTE: one or
// more OK packets or result sets, until one without
// SERVER_MORE_RESULTS_EXISTS, or an ERR.
func (s *session) relayResults(binary bool) (result, error) {
	var r result
	for {
		p, err := s.readBackendResult()
		if err != nil {
			return r, err
		}
		switch p[0] {
		case mysql.OKHeader:
			if err := s.relayOK(p, &r); err != nil {
				return r, err
			}
		case mysql.ERRHeader:
			return r, s.relayErr(p, &r)
		case mysql.LocalInfileHeader:
			if err := s.relayLocalInfile(p, &r); err != nil {
				return r, err
			}
		default:
			cols, _, _, err := mysql.ReadLenEncInt(p)
			if err != nil {
				return r, &backendReadError{fmt.Errorf("bad column count: %w", err)}
			}
			if s.sec.active {
				// Encrypted or masked columns (security claim): the
				// definitions are planned, rows transformed one at a time.
				if err := s.relaySecureResultSet(cols, binary, &r); err != nil || r.err != nil {
					return r, err
				}
				break
			}
			if err := s.writeClient(p); err != nil {
				return r, err
			}
			r.sent = true
			// With a cursor the server sends no rows now; they come with
			// COM_STMT_FETCH.
			if err := s.relayColumnDefs(cols, &r, false, nil); err != nil || r.err != nil {
				return r, err
			}
			if binary && r.status&mysql.StatusCursorExists != 0 {
				if s.clientDeprecateEOF() {
					// The client expects the status in an OK-as-EOF.
					s.scratch = mysql.AppendOK(s.scratch[:0], mysql.EOFHeader, &mysql.OK{Status: r.status}, s.caps)
					if err := s.writeClient(s.scratch); err != nil {
						return r, err
					}
				}
			} else if err := s.relayRows(&r); err != nil || r.err != nil {
				return r, err
			}
		}
		r.sent = true
		if r.status&mysql.StatusMoreResultsExists == 0 {
			return r, nil
		}
	}
}

// relayLocalInfile runs LOAD DATA LOCAL INFILE: the backend asks for a file,
// the client sends it in packets ending with an empty one, then the backend
// answers OK or ERR.
func (s *session) relayLocalInfile(p []byte, r *result) error {
	if s.txl.replaying {
		return &backendReadError{errors.New("LOAD DATA LOCAL cannot be replayed")}
	}
	s.txl.breakLog("LOAD DATA LOCAL")
	if s.caps&mysql.ClientLocalFiles == 0 {
		// The client did not enable LOCAL INFILE: end the backend's request
		// with an empty file and refuse the statement, as MariaDB does for
		// such a client (unless more results follow, which the client must
		// still receive).
		if err := s.be.WritePacketFlush(nil); err != nil {
			return &backendReadError{err}
		}
		q, err := s.readBackendResult()
		if err != nil {
			return err
		}
		if q[0] == mysql.ERRHeader {
			return s.relayErr(q, r)
		}
		if ok, err := mysql.ParseOK(q, s.be.Info.Capabilities); err == nil && ok.Status&mysql.StatusMoreResultsExists == 0 {
			s.observeOK(&ok, r)
			r.sent = true
			return s.relayErr(mysql.AppendErr(nil, mysql.NewError(4166, "HY000",
				"The used command is not allowed because the MariaDB server or client has disabled the local infile capability")), r)
		}
		return s.relayOK(q, r)
	} else {
		if err := s.writeClient(p); err != nil {
			return err
		}
		if err := s.client.Flush(); err != nil {
			return fmt.Errorf("%w: %w", errClientWrite, err)
		}
		r.sent = true
		for {
			data, err := s.client.ReadPacket()
			if err != nil {
				return fmt.Errorf("%w: read local infile data: %w", errClientWrite, err)
			}
			if err := s.be.WritePacket(data); err != nil {
				return &backendReadError{err}
			}
			if len(data) == 0 {
				break
			}
		}
		if err := s.be.Flush(); err != nil {
			return &backendReadError{err}
		}
	}
	q, err := s.readBackendResult()
	if err != nil {
		return err
	}
	if q[0] == mysql.ERRHeader {
		return s.relayErr(q, r)
	}
	return s.relayOK(q, r)
}

// readBackendResult reads the next packet of a response, relaying the
// progress reports before it.
func (s *session) readBackendResult() ([]byte, error) {
	for {
		p, err := s.readBackend()
		if err != nil || !isProgress(p) {
			return p, err
		}
		if err := s.relayProgress(p); err != nil {
			return nil, err
		}
	}
}

// isProgress reports a MariaDB progress report: an ERR packet with code
// 0xffff, sent while a long statement runs.
func isProgress(p []byte) bool {
	return len(p) >= 3 && p[0] == mysql.ERRHeader && p[1] == 0xff && p[2] == 0xff
}

// relayProgress passes a progress report to a client that asked for them
// (MARIADB_CLIENT_PROGRESS) right away, and drops it for others (the server
// would not have sent it).
func (s *session) relayProgress(p []byte) error {
	if s.extCaps&mysql.MariaDBClientProgress == 0 || s.txl.replaying {
		return nil
	}
	// Not through writeClient: progress is no result a replay could match.
	if err := s.client.WritePacket(p); err != nil {
		return fmt.Errorf("%w: %w", errClientWrite, err)
	}
	if err := s.client.Flush(); err != nil {
		return fmt.Errorf("%w: %w", errClientWrite, err)
	}
	return nil
}

// relayPrepare forwards a COM_STMT_PREPARE response, replacing the backend
// statement id with the session's own. It returns the backend's id and the
// parameter count. With keep, the response is also copied into it, for
// the prepare metadata cache (stmtmeta.go).
func (s *session) relayPrepare(proxyID uint32, keep *stmtMeta) (result, uint32, uint16, error) {
	var r result
	var keepDefs *[][]byte
	if keep != nil {
		keep.ok, keep.defs = nil, keep.defs[:0] // exec may retry on another connection
		keepDefs = &keep.defs
	}
	p, err := s.readBackend()
	if err != nil {
		return r, 0, 0, err
	}
	if p[0] == mysql.ERRHeader {
		return r, 0, 0, s.relayErr(p, &r)
	}
	if p[0] != mysql.OKHeader || len(p) < 12 {
		return r, 0, 0, &backendReadError{fmt.Errorf("bad prepare response")}
	}
	backendID := uint32(p[1]) | uint32(p[2])<<8 | uint32(p[3])<<16 | uint32(p[4])<<24
	cols := uint64(p[5]) | uint64(p[6])<<8
	params := uint64(p[7]) | uint64(p[8])<<8
	p[1], p[2], p[3], p[4] = byte(proxyID), byte(proxyID>>8), byte(proxyID>>16), byte(proxyID>>24)
	if keep != nil {
		keep.ok = bytes.Clone(p)
		keep.params, keep.cols, keep.warnings = uint16(params), uint16(cols), uint16(p[10])|uint16(p[11])<<8
		keep.ext = s.be.Info.ExtCaps&mysql.MariaDBClientExtendedMetadata != 0
	}
	if err := s.writeClient(p); err != nil {
		return r, backendID, uint16(params), err
	}
	r.sent = true
	if params > 0 {
		if err := s.relayColumnDefs(params, &r, false, keepDefs); err != nil || r.err != nil {
			return r, backendID, uint16(params), err
		}
	}
	if cols > 0 {
		if err := s.relayColumnDefs(cols, &r, false, keepDefs); err != nil || r.err != nil {
			return r, backendID, uint16(params), err
		}
	}
	return r, backendID, uint16(params), nil
}

// relayFetch forwards a COM_STMT_FETCH response: binary rows, then EOF (or
// ERR). There is no column count, and a binary row starts with 0x00, so the
// response must not go through relayResults, which would take the first
// row for an OK packet.
func (s *session) relayFetch() (result, error) {
	var r result
	err := s.relayRows(&r)
	// A failure before the first row sent nothing: the client can get an
	// error (the connection was lost with the cursor).
	r.sent = err == nil || r.rows > 0 || errors.Is(err, errClientWrite)
	return r, err
}

// relayFieldList forwards a COM_FIELD_LIST response: column definitions
// ending with EOF, or ERR.
func (s *session) relayFieldList() (result, error) {
	var r result
	convert := s.extMetaMismatch()
	for {
		p, err := s.readBackend()
		if err != nil {
			return r, err
		}
		switch {
		case p[0] == mysql.ERRHeader:
			return r, s.relayErr(p, &r)
		case mysql.IsEOF(p):
			return r, s.writeEOF(p, &r, true)
		}
		if convert {
			p = s.convertColumnDef(p)
		}
		if err := s.writeClient(p); err != nil {
			return r, err
		}
		r.sent = true
	}
}

// relaySimple forwards a one-packet response (OK, ERR or a string).
func (s *session) relaySimple() (result, error) {
	var r result
	p, err := s.readBackendResult()
	if err != nil {
		return r, err
	}
	switch p[0] {
	case mysql.OKHeader:
		return r, s.relayOK(p, &r)
	case mysql.ERRHeader:
		return r, s.relayErr(p, &r)
	}
	r.sent = true
	return r, s.writeClient(p)
}

// extMetaMismatch reports whether the client and backend disagree on
// MariaDB's extended column metadata.
func (s *session) extMetaMismatch() bool {
	return (s.extCaps&mysql.MariaDBClientExtendedMetadata != 0) !=
		(s.be.Info.ExtCaps&mysql.MariaDBClientExtendedMetadata != 0)
}

// convertColumnDef adds or strips the extended metadata block of a column
// definition (after org_name).
func (s *session) convertColumnDef(p []byte) []byte {
	pos := 0
	for i := 0; i < 6; i++ {
		_, _, n, err := mysql.ReadLenEncBytes(p[pos:])
		if err != nil {
			return p
		}
		pos += n
	}
	out := append(s.scratch[:0], p[:pos]...)
	if s.extCaps&mysql.MariaDBClientExtendedMetadata != 0 {
		out = append(out, 0) // empty extended info
		out = append(out, p[pos:]...)
	} else {
		_, _, n, err := mysql.ReadLenEncBytes(p[pos:])
		if err != nil {
			return p
		}
		out = append(out, p[pos+n:]...)
	}
	s.scratch = out
	return out
}
