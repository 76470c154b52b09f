package route

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// Causal read modes (CausalOptions.Mode).
const (
	CausalOff    = "off"
	CausalGTID   = "gtid"
	CausalWindow = "window"
)

// Defaults of CausalOptions.
const (
	DefaultCausalWindow      = time.Second
	DefaultCausalWaitTimeout = 500 * time.Millisecond
)

// CausalOptions configures read-your-writes for read/write splitting (new
// beyond Pisanix; proposed keys under [proxy.config.read_write_splitting]:
// causal_reads = "off"|"gtid"|"window", causal_reads_window,
// causal_reads_wait_timeout).
//
//   - "gtid": after a session writes, the server reports the transaction's
//     GTID (session variable last_gtid, tracked through
//     session_track_system_variables). Before the session reads on a
//     replica, the proxy runs MASTER_GTID_WAIT(gtid, WaitTimeout) there; if
//     the replica has not applied the write in time, the read goes to the
//     writer instead. When a write left no GTID (binary log off) the
//     session's reads stay on the writer for Window.
//   - "window": after a session writes, its reads go to the writer for
//     Window.
type CausalOptions struct {
	Mode        string
	Window      time.Duration
	WaitTimeout time.Duration
}

// Normalize validates o and fills defaults.
func (o *CausalOptions) Normalize() error {
	switch o.Mode {
	case "", CausalOff:
		o.Mode = CausalOff
	case CausalGTID, CausalWindow:
	default:
		return fmt.Errorf("route: causal_reads %q: want %q, %q or %q", o.Mode, CausalOff, CausalGTID, CausalWindow)
	}
	if o.Window < 0 || o.WaitTimeout < 0 {
		return fmt.Errorf("route: causal reads window and wait timeout must not be negative")
	}
	if o.Window == 0 {
		o.Window = DefaultCausalWindow
	}
	if o.WaitTimeout == 0 {
		o.WaitTimeout = DefaultCausalWaitTimeout
	}
	return nil
}

// Enabled reports a mode other than off.
func (o *CausalOptions) Enabled() bool { return o != nil && o.Mode != "" && o.Mode != CausalOff }

// LastGTID finds last_gtid in a session-state-change block (mysql.OK's
// SessionState). The result aliases state. It does not allocate.
func LastGTID(state []byte) (gtid []byte, ok bool) {
	for len(state) > 0 {
		typ := state[0]
		data, _, n, err := mysql.ReadLenEncBytes(state[1:])
		if err != nil {
			return nil, false
		}
		state = state[1+n:]
		if typ != mysql.SessionTrackSystemVariables {
			continue
		}
		name, _, k, err := mysql.ReadLenEncBytes(data)
		if err != nil || string(name) != "last_gtid" {
			continue
		}
		val, _, _, err := mysql.ReadLenEncBytes(data[k:])
		if err != nil {
			return nil, false
		}
		gtid, ok = val, true // keep scanning: the last entry wins
	}
	return gtid, ok
}

// ValidGTIDList reports whether s looks like a MariaDB GTID list
// ("0-1-42" or "0-1-42,1-2-7"): digits, '-' and ','. It keeps the wait
// query safe to build by concatenation.
func ValidGTIDList(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != '-' && c != ',' {
			return false
		}
	}
	return true
}

// AppendGTIDWaitQuery appends "SELECT MASTER_GTID_WAIT('<gtid>', <seconds>)"
// to dst. gtid must satisfy ValidGTIDList.
func AppendGTIDWaitQuery(dst, gtid []byte, timeout time.Duration) []byte {
	dst = append(dst, "SELECT MASTER_GTID_WAIT('"...)
	dst = append(dst, gtid...)
	dst = append(dst, "', "...)
	dst = strconv.AppendFloat(dst, timeout.Seconds(), 'f', -1, 64)
	return append(dst, ')')
}

// GTIDWaitCaughtUp interprets the value of MASTER_GTID_WAIT: 0 means the
// replica has applied the GTIDs; -1 (timeout) and NULL (error) mean not.
func GTIDWaitCaughtUp(val []byte, null bool) bool {
	return !null && string(bytes.TrimSpace(val)) == "0"
}

// RowQueryer is satisfied by *sql.DB, *sql.Conn and *sql.Tx.
type RowQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// WaitGTID runs MASTER_GTID_WAIT on a replica connection (database/sql) and
// reports whether the replica applied gtid within timeout.
func WaitGTID(ctx context.Context, q RowQueryer, gtid string, timeout time.Duration) (bool, error) {
	if !ValidGTIDList([]byte(gtid)) {
		return false, fmt.Errorf("route: invalid GTID %q", gtid)
	}
	var v sql.NullString
	err := q.QueryRowContext(ctx, string(AppendGTIDWaitQuery(nil, []byte(gtid), timeout))).Scan(&v)
	if err != nil {
		return false, err
	}
	return GTIDWaitCaughtUp([]byte(v.String), !v.Valid), nil
}

// PacketConn is the part of *mysql.Conn that WaitGTIDPackets uses.
type PacketConn interface {
	ResetSeq()
	WritePacketFlush(payload []byte) error
	ReadPacket() ([]byte, error)
}

// WaitGTIDPackets sends query (from AppendGTIDWaitQuery, without the command
// byte) as COM_QUERY on a backend protocol connection negotiated with caps,
// reads its one-row result and reports whether the replica caught up. buf is
// scratch space (may be nil). An ERR from the server is returned as
// *mysql.Error and leaves the connection usable; other errors leave it
// broken.
func WaitGTIDPackets(c PacketConn, caps uint32, query, buf []byte) (caughtUp bool, err error) {
	c.ResetSeq()
	buf = append(append(buf[:0], mysql.ComQuery), query...)
	if err := c.WritePacketFlush(buf); err != nil {
		return false, err
	}
	p, err := c.ReadPacket()
	if err != nil {
		return false, err
	}
	switch {
	case len(p) == 0:
		return false, mysql.ErrMalformed
	case p[0] == mysql.ERRHeader:
		return false, mysql.ParseErr(p)
	case p[0] == mysql.OKHeader:
		return false, errors.New("route: MASTER_GTID_WAIT returned no result set")
	}
	ncols, _, _, err := mysql.ReadLenEncInt(p)
	if err != nil {
		return false, err
	}
	for i := uint64(0); i < ncols; i++ {
		if _, err := c.ReadPacket(); err != nil {
			return false, err
		}
	}
	deprecateEOF := caps&mysql.ClientDeprecateEOF != 0
	if !deprecateEOF {
		if _, err := c.ReadPacket(); err != nil { // EOF after column definitions
			return false, err
		}
	}
	rows := 0
	for {
		p, err := c.ReadPacket()
		if err != nil {
			return false, err
		}
		if len(p) == 0 {
			return false, mysql.ErrMalformed
		}
		if p[0] == mysql.ERRHeader {
			return false, mysql.ParseErr(p)
		}
		if (deprecateEOF && mysql.IsOKAsEOF(p)) || (!deprecateEOF && mysql.IsEOF(p)) {
			break
		}
		rows++
		if rows > 1 {
			continue
		}
		if p[0] == 0xfb { // NULL
			caughtUp = false
			continue
		}
		val, _, _, err := mysql.ReadLenEncBytes(p)
		if err != nil {
			return false, err
		}
		caughtUp = GTIDWaitCaughtUp(val, false)
	}
	if rows != 1 {
		return false, fmt.Errorf("route: MASTER_GTID_WAIT returned %d rows", rows)
	}
	return caughtUp, nil
}

// CausalAction tells a session what a read needs before it may run on a
// replica.
type CausalAction uint8

const (
	// CausalNone: read anywhere the router says.
	CausalNone CausalAction = iota
	// CausalWait: read on a replica only after it applied the session's
	// last GTID (see CausalTracker.NeedsWait); else on the writer.
	CausalWait
	// CausalWriter: read on the writer.
	CausalWriter
)

// CausalTracker is the read-your-writes state of one client session. It is
// not safe for concurrent use (one per session) and does not allocate once
// its GTID buffer has grown.
type CausalTracker struct {
	opts    CausalOptions
	gtid    []byte    // last GTID written by the session ("" = none)
	wroteAt time.Time // last write without a GTID
	// caughtUp has bit i set when endpoint i is known to have applied gtid
	// (endpoints 0..63; others are always asked).
	caughtUp uint64
	query    []byte
}

// NewCausalTracker returns a tracker for one session; opts must have been
// normalized.
func NewCausalTracker(opts CausalOptions) *CausalTracker {
	return &CausalTracker{opts: opts}
}

// Enabled reports whether the tracker does anything.
func (t *CausalTracker) Enabled() bool { return t != nil && t.opts.Enabled() }

// ObserveOK records the final OK of a statement that ran on a readwrite
// node. wrote tells that the statement may have changed data (not
// read-only, or COMMIT); with GTID mode the GTID in the OK (if any) is what
// reads will wait for.
func (t *CausalTracker) ObserveOK(ok *mysql.OK, wrote bool, now time.Time) {
	if !t.Enabled() {
		return
	}
	if t.opts.Mode == CausalGTID && ok != nil && ok.Status&mysql.StatusSessionStateChange != 0 {
		if g, found := LastGTID(ok.SessionState); found && ValidGTIDList(g) && !bytes.Equal(g, t.gtid) {
			t.gtid = append(t.gtid[:0], g...)
			t.caughtUp = 0
			return
		}
	}
	if wrote {
		t.wroteAt = now
	}
}

// BeforeRead tells what a read routed to a replica needs now.
func (t *CausalTracker) BeforeRead(now time.Time) CausalAction {
	if !t.Enabled() {
		return CausalNone
	}
	if t.opts.Mode == CausalGTID && len(t.gtid) > 0 {
		return CausalWait
	}
	if !t.wroteAt.IsZero() && now.Sub(t.wroteAt) < t.opts.Window {
		return CausalWriter
	}
	return CausalNone
}

// NeedsWait reports whether endpoint must run the wait query before a read
// (GTID mode, a GTID pending, endpoint not yet known to have applied it).
func (t *CausalTracker) NeedsWait(endpoint int) bool {
	if !t.Enabled() || t.opts.Mode != CausalGTID || len(t.gtid) == 0 {
		return false
	}
	return endpoint < 0 || endpoint >= 64 || t.caughtUp&(1<<uint(endpoint)) == 0
}

// WaitQuery returns the MASTER_GTID_WAIT query for the pending GTID (valid
// until the next call on t).
func (t *CausalTracker) WaitQuery() []byte {
	t.query = AppendGTIDWaitQuery(t.query[:0], t.gtid, t.opts.WaitTimeout)
	return t.query
}

// GTID returns the pending GTID ("" when none).
func (t *CausalTracker) GTID() string { return string(t.gtid) }

// CaughtUp records that endpoint applied the pending GTID, so later reads
// there skip the wait until the session writes again.
func (t *CausalTracker) CaughtUp(endpoint int) {
	if endpoint >= 0 && endpoint < 64 {
		t.caughtUp |= 1 << uint(endpoint)
	}
}

// Reset forgets everything (COM_RESET_CONNECTION, COM_CHANGE_USER).
func (t *CausalTracker) Reset() {
	t.gtid, t.wroteAt, t.caughtUp = t.gtid[:0], time.Time{}, 0
}
