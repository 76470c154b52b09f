// Package xalog is the decision log of pisa-proxy's two-phase commits
// (cross-shard transactions with MariaDB XA) and the transaction ids they
// use.
//
// Before the first XA COMMIT of a transaction whose branches are prepared
// on several nodes, the coordinator appends a commit record for its global
// transaction id and fsyncs the file: from then on the transaction is
// committed, whatever crashes. Recovery (XA RECOVER on every node) commits a
// prepared branch of an own transaction whose id has a commit record and
// rolls back the others. When every branch of a transaction is committed a
// done record follows (not synced: losing it only makes recovery look
// again); the file is compacted when it grows past its bound, keeping the
// commit records without a done record.
package xalog

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FormatID is the XA format id of pisa-proxy's transactions ("PISA").
const FormatID = 0x50495341

// MaxProxyID bounds a proxy id so that a global transaction id fits in
// MariaDB's 64 bytes.
const MaxProxyID = 32

// ValidProxyID reports whether id may be used in transaction ids: 1 to
// MaxProxyID letters, digits, '-', '_' or '.'.
func ValidProxyID(id string) bool {
	if id == "" || len(id) > MaxProxyID {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}

// IDs makes global transaction ids for one proxy process:
// "pisa:<proxy id>:<process start, base 36>:<counter, base 36>". The
// process part keeps ids unique across restarts (a restarted proxy never
// mistakes an old transaction for one it is running).
type IDs struct {
	prefix string
	boot   string
	n      atomic.Uint64
}

// NewIDs returns the id maker of proxy proxyID.
func NewIDs(proxyID string) *IDs {
	return &IDs{prefix: Prefix(proxyID), boot: strconv.FormatInt(time.Now().UnixNano(), 36)}
}

// Prefix is the start of every global transaction id of proxy proxyID.
func Prefix(proxyID string) string { return "pisa:" + proxyID + ":" }

// Next returns a new global transaction id.
func (g *IDs) Next() string {
	return g.prefix + g.boot + ":" + strconv.FormatUint(g.n.Add(1), 36)
}

// Own reports whether gtrid is a transaction of the proxy whose prefix
// (Prefix) is given.
func Own(prefix string, formatID int64, gtrid string) bool {
	return formatID == FormatID && strings.HasPrefix(gtrid, prefix)
}

// XID returns the SQL form of a transaction branch id ('gtrid','bqual',fmt)
// for XA statements. Ids are made of safe characters (see ValidProxyID);
// others are hex-encoded.
func XID(gtrid, bqual string) string {
	return hexOrQuoted(gtrid) + "," + hexOrQuoted(bqual) + "," + strconv.Itoa(FormatID)
}

func hexOrQuoted(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return fmt.Sprintf("X'%x'", s)
		}
	}
	return "'" + s + "'"
}

// Branch is one row of XA RECOVER.
type Branch struct {
	FormatID     int64
	Gtrid, Bqual string
}

// ParseRecover reads a row of XA RECOVER (formatID, gtrid_length,
// bqual_length, data).
func ParseRecover(row []string) (Branch, error) {
	if len(row) != 4 {
		return Branch{}, fmt.Errorf("XA RECOVER row has %d columns, want 4", len(row))
	}
	f, err1 := strconv.ParseInt(row[0], 10, 64)
	gl, err2 := strconv.Atoi(row[1])
	bl, err3 := strconv.Atoi(row[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return Branch{}, fmt.Errorf("XA RECOVER row %q: %w", row, err)
	}
	if gl < 0 || bl < 0 || gl+bl != len(row[3]) {
		return Branch{}, fmt.Errorf("XA RECOVER row %q: lengths do not match the data", row)
	}
	return Branch{FormatID: f, Gtrid: row[3][:gl], Bqual: row[3][gl:]}, nil
}

// Log is a decision log file. Its methods are safe for concurrent use.
type Log struct {
	path     string
	maxBytes int64

	mu      sync.Mutex
	f       *os.File
	size    int64
	pending map[string]bool // commit records without a done record
	loaded  bool
	syncs   atomic.Uint64
}

// DefaultMaxBytes is the size past which a log is compacted.
const DefaultMaxBytes = 4 << 20

// New returns the log at path; nothing is read or created until it is
// used. maxBytes <= 0 means DefaultMaxBytes.
func New(path string, maxBytes int64) *Log {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return &Log{path: path, maxBytes: maxBytes}
}

// Path returns the log's file name.
func (l *Log) Path() string { return l.path }

// Syncs returns how many times the log was fsynced (tests, benchmarks).
func (l *Log) Syncs() uint64 { return l.syncs.Load() }

// load reads the file once. A missing file is an empty log.
func (l *Log) loadLocked() error {
	if l.loaded {
		return nil
	}
	pending := map[string]bool{}
	f, err := os.Open(l.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("xa decision log: %w", err)
	default:
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			kind, id, ok := strings.Cut(line, " ")
			if !ok || id == "" {
				continue // a torn last line of a crash: its fsync never returned
			}
			switch kind {
			case "C":
				pending[id] = true
			case "D":
				delete(pending, id)
			}
		}
		err := sc.Err()
		f.Close()
		if err != nil {
			return fmt.Errorf("xa decision log %s: %w", l.path, err)
		}
	}
	l.pending = pending
	l.loaded = true
	return nil
}

// openLocked opens the file for appending.
func (l *Log) openLocked() error {
	if err := l.loadLocked(); err != nil {
		return err
	}
	if l.f != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(l.path), 0o750); err != nil {
		return fmt.Errorf("xa decision log: %w", err)
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("xa decision log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("xa decision log: %w", err)
	}
	l.f, l.size = f, st.Size()
	return nil
}

// Commit durably records the decision to commit gtrid: it returns after
// the record is on disk.
func (l *Log) Commit(gtrid string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.openLocked(); err != nil {
		return err
	}
	if l.size > l.maxBytes {
		if err := l.compactLocked(); err != nil {
			return err
		}
	}
	if err := l.appendLocked("C " + gtrid + "\n"); err != nil {
		return err
	}
	if err := l.f.Sync(); err != nil {
		// The record may or may not be on disk: the file is unusable.
		l.f.Close()
		l.f = nil
		return fmt.Errorf("xa decision log: fsync: %w", err)
	}
	l.syncs.Add(1)
	l.pending[gtrid] = true
	return nil
}

// Done records that every branch of gtrid is committed (not synced).
func (l *Log) Done(gtrid string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.openLocked(); err != nil {
		return err
	}
	if !l.pending[gtrid] {
		return nil
	}
	delete(l.pending, gtrid)
	return l.appendLocked("D " + gtrid + "\n")
}

func (l *Log) appendLocked(rec string) error {
	n, err := l.f.WriteString(rec)
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("xa decision log: write: %w", err)
	}
	return nil
}

// Committed reports whether gtrid has a commit record. An error means the
// log cannot be read: the caller must not decide.
func (l *Log) Committed(gtrid string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.loadLocked(); err != nil {
		return false, err
	}
	return l.pending[gtrid], nil
}

// Pending returns the commit records without a done record.
func (l *Log) Pending() ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.loadLocked(); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(l.pending))
	for id := range l.pending {
		out = append(out, id)
	}
	return out, nil
}

// compactLocked rewrites the file with the pending commit records only
// (a new file synced and renamed over the old one).
func (l *Log) compactLocked() error {
	tmp := l.path + ".compact"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("xa decision log: compact: %w", err)
	}
	w := bufio.NewWriter(f)
	var size int64
	for id := range l.pending {
		n, _ := w.WriteString("C " + id + "\n")
		size += int64(n)
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, l.path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(l.path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("xa decision log: compact: %w", err)
	}
	if l.f != nil {
		l.f.Close()
	}
	l.f, err = os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		l.f = nil
		return fmt.Errorf("xa decision log: %w", err)
	}
	l.size = size
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
