package proxy

import (
	"context"
	"strings"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
)

// What a client's session starts with is what a direct connection to the
// backend would start with: the character set its handshake names, the
// status flags, the session trackers. The backend's own values come from
// the first connection each pool dials (backend.ServerDefaults).

// serverDefaults returns the defaults of the listener's backends: those of
// the first pool that has read them. With load set and none read yet, it
// dials one connection to read them (the first client of a listener pays
// for it); nil when no backend can be reached.
func (rt *runtime) serverDefaults(load bool) *backend.ServerDefaults {
	pools := rt.allPools()
	for _, pl := range pools {
		if d := pl.Defaults(); d != nil {
			return d
		}
	}
	if !load {
		return nil
	}
	for _, pl := range pools {
		if !pl.Healthy() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := pl.Get(ctx, backend.Variant{})
		cancel()
		if err != nil {
			continue
		}
		pl.Put(c)
		if d := pl.Defaults(); d != nil {
			return d
		}
	}
	return nil
}

func (rt *runtime) allPools() []*backend.Pool {
	if len(rt.shardPools) == 0 {
		return rt.pools
	}
	pools := append([]*backend.Pool(nil), rt.pools...)
	for _, pl := range rt.shardPools {
		pools = append(pools, pl)
	}
	return pools
}

// greeting returns the status flags and collation id of the handshake
// greeting: the backend's, once known.
func (rt *runtime) greeting() (status uint16, collation uint8) {
	if d := rt.serverDefaults(false); d != nil {
		return d.GreetingStatus, d.GreetingCollation
	}
	return mysql.StatusAutocommit, mysql.DefaultCollationID
}

// persistentStatus are the status flags that describe the session rather
// than the last statement: a locally generated OK or EOF carries them.
const persistentStatus = mysql.StatusInTrans | mysql.StatusAutocommit |
	mysql.StatusNoBackslashEscapes | mysql.StatusInTransReadonly

// checkCollation runs for the handshake's collation id before the client's
// credentials are checked, as MariaDB does: a character set the server
// refuses as a client character set is refused with the server's error.
// The character set variables the id gives are applied when the session
// starts; when no backend could be reached they are resolved on the first
// backend connection (s.pendingColl).
func (s *session) checkCollation(id uint8) error {
	s.charset, s.pendingColl = nil, 0
	d := s.rt.serverDefaults(true)
	if d == nil {
		s.pendingColl = id
		if id == 0 {
			s.pendingColl = mysql.DefaultCollationID
		}
		return nil
	}
	vars, err := d.ClientCharsetVars(id)
	if err != nil {
		return err
	}
	s.charset = vars
	s.trackDefaults(d)
	return nil
}

// applyCharset records the handshake's character set in the session state.
func (s *session) applyCharset() {
	for k, v := range s.charset {
		s.state.SetVar(k, v)
	}
}

// resolvePendingCharset applies a handshake collation that could not be
// resolved at connect time (no backend was reachable), on the first
// backend connection. A refused character set ends the session.
func (s *session) resolvePendingCharset(c *backend.Conn) error {
	if s.pendingColl == 0 {
		return nil
	}
	d := c.Pool.Defaults()
	if d == nil {
		return nil
	}
	id := s.pendingColl
	s.pendingColl = 0
	vars, err := d.ClientCharsetVars(id)
	if err != nil {
		s.killed.Store(true)
		return err
	}
	s.charset = vars
	s.trackDefaults(d)
	s.applyCharset()
	return nil
}

// clientTracker is what the client's own session trackers report: the
// backend connections track everything, a client gets only what a direct
// connection with its settings would.
type clientTracker struct {
	allVars   bool
	vars      map[string]bool
	schema    bool
	state     bool
	known     bool
	varsValue string
}

func (s *session) trackDefaults(d *backend.ServerDefaults) {
	s.track = clientTracker{known: true, schema: d.TrackSchema, state: d.TrackStateChange}
	s.track.setVars(d.TrackSystemVariables)
}

func (t *clientTracker) setVars(v string) {
	t.varsValue = v
	t.allVars = false
	t.vars = make(map[string]bool)
	for _, name := range strings.Split(v, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "*" {
			t.allVars = true
		} else if name != "" {
			t.vars[name] = true
		}
	}
}

func onOff(v string) bool { return v == "1" || strings.EqualFold(v, "ON") }

// filterSessionState returns the part of a backend session-state block the
// client's trackers report (appended to dst), after applying the client's
// own changes of its trackers found in the block.
func (s *session) filterSessionState(dst, block []byte) []byte {
	t := &s.track
	// First the client's own tracker changes: MariaDB reports with the
	// settings in force after the statement.
	_ = mysql.ParseSessionState(block, func(ch mysql.SessionChange) {
		if ch.Type != mysql.SessionTrackSystemVariables {
			return
		}
		switch ch.Name {
		case "session_track_system_variables":
			t.setVars(ch.Value)
		case "session_track_schema":
			t.schema = onOff(ch.Value)
		case "session_track_state_change":
			t.state = onOff(ch.Value)
		}
	})
	for len(block) > 0 {
		typ := block[0]
		_, _, n, err := mysql.ReadLenEncBytes(block[1:])
		if err != nil {
			break
		}
		entry := block[:1+n]
		block = block[1+n:]
		keep := true
		switch typ {
		case mysql.SessionTrackSystemVariables:
			name, _, _, err := mysql.ReadLenEncBytes(entry[1+lenEncSize(entry[1:]):])
			keep = err == nil && (t.allVars || t.vars[strings.ToLower(string(name))])
		case mysql.SessionTrackSchema:
			keep = t.schema
		case mysql.SessionTrackStateChange:
			keep = t.state
		}
		if keep {
			dst = append(dst, entry...)
		}
	}
	return dst
}

// lenEncSize is the size of the length-encoded integer at the start of b.
func lenEncSize(b []byte) int {
	_, _, n, err := mysql.ReadLenEncInt(b)
	if err != nil {
		return len(b)
	}
	return n
}

// refreshTracker reads the client's trackers from its (pinned) backend
// connection after a statement that may have changed them.
func (s *session) refreshTracker() {
	if s.be == nil || !s.track.known {
		return
	}
	row, err := s.be.QueryRow("SELECT @@session.session_track_system_variables, @@session.session_track_schema, @@session.session_track_state_change")
	if err != nil || len(row) != 3 {
		s.logger.Warn("reading session trackers failed", "error", err)
		return
	}
	s.track.setVars(row[0])
	s.track.schema = onOff(row[1])
	s.track.state = onOff(row[2])
}
