// Package audit writes an optional audit log of statements as JSON lines,
// to stdout, stderr or a file rotated by size and age (lumberjack).
//
// The data path never blocks on the log: records go into a bounded
// channel read by one background writer per output; when the channel is
// full the record is dropped and counted (pisa_proxy_audit_dropped_total).
//
// What is logged (include):
//   - "all" (default): every statement, sampled at sample_rate; slow
//     statements (duration >= slow_threshold, when set) and failed or
//     rejected ones are always logged.
//   - "slow": only slow statements (slow_threshold is required).
//   - "errors": only failed or rejected statements.
//
// The "sql" field holds the statement's fingerprint (literals replaced by
// ?) unless log_sql is true; when no fingerprint is known, literals are
// redacted from the text.
package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/database-mesh/pisanix-go/internal/proxy/govern/govmetrics"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// Defaults of proxyconfig.Audit's zero values.
const (
	DefaultMaxSizeMB  = 100
	DefaultBufferSize = 4096
)

// Include values (proxyconfig.Audit.Include).
const (
	IncludeAll    = proxyconfig.AuditIncludeAll
	IncludeSlow   = proxyconfig.AuditIncludeSlow
	IncludeErrors = proxyconfig.AuditIncludeErrors
)

// Record is one audit log line.
type Record struct {
	Time     time.Time `json:"time"`
	Domain   string    `json:"domain,omitempty"`
	User     string    `json:"user"`
	Client   string    `json:"client"`
	Schema   string    `json:"schema,omitempty"`
	Command  string    `json:"command,omitempty"`
	Digest   string    `json:"digest,omitempty"`
	SQL      string    `json:"sql"`
	Duration float64   `json:"duration_ms"`
	Rows     uint64    `json:"rows"`
	Error    string    `json:"error,omitempty"`
	Backend  string    `json:"backend,omitempty"`
	Route    string    `json:"route,omitempty"`
	Rules    []string  `json:"rules,omitempty"`
	// Masking names the security claim's masking rules applied to the
	// statement's results.
	Masking  []string `json:"masking,omitempty"`
	Slow     bool     `json:"slow,omitempty"`
	Rejected bool     `json:"rejected,omitempty"`
}

// Logger decides what to log and queues records for the writer of its
// output. Safe for concurrent use; a nil *Logger logs nothing.
type Logger struct {
	include  string
	sample   float64
	slow     time.Duration
	logSQL   bool
	sink     *sink
	records  prometheus.Counter
	dropped  prometheus.Counter
	closed   atomic.Bool
	domain   string
	closeOne sync.Once
}

// Open creates a Logger for domain; it returns nil, nil when cfg is nil
// or has no output. Loggers with the same output share one writer.
func Open(cfg *proxyconfig.Audit, domain string, m *govmetrics.Metrics) (*Logger, error) {
	if cfg == nil || cfg.Output == "" {
		return nil, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := acquireSink(cfg)
	if err != nil {
		return nil, err
	}
	l := &Logger{
		include: cfg.Include, sample: 1, slow: cfg.SlowThreshold.Duration, logSQL: cfg.LogSQL,
		sink: s, records: m.AuditRecords(domain), dropped: m.AuditDropped(domain), domain: domain,
	}
	if l.include == "" {
		l.include = IncludeAll
	}
	if cfg.SampleRate != nil {
		l.sample = *cfg.SampleRate
	}
	return l, nil
}

// Want reports whether a statement that took d and failed (or not) is to
// be logged, and whether it is slow. Call it before building a Record.
func (l *Logger) Want(d time.Duration, failed bool) (want, slow bool) {
	if l == nil {
		return false, false
	}
	slow = l.slow > 0 && d >= l.slow
	switch l.include {
	case IncludeSlow:
		return slow, slow
	case IncludeErrors:
		return failed, slow
	}
	if slow || failed || l.sample >= 1 {
		return true, slow
	}
	return l.sample > 0 && rand.Float64() < l.sample, slow
}

// Log queues r; rawSQL is the statement text and fingerprint its
// fingerprint. r.SQL is set from them according to log_sql. Log never
// blocks: when the queue is full the record is dropped and counted.
func (l *Logger) Log(r *Record, rawSQL, fingerprint string) {
	if l == nil || l.closed.Load() {
		return
	}
	it := item{rec: *r}
	if l.logSQL {
		it.rec.SQL = strings.Clone(rawSQL)
	} else if fingerprint != "" {
		it.rec.SQL = fingerprint
	} else {
		it.raw = strings.Clone(rawSQL) // redacted by the writer
		it.redact = true
	}
	select {
	case l.sink.ch <- it:
		l.records.Inc()
	default:
		l.dropped.Inc()
	}
}

// Close releases the logger's writer; the writer drains its queue and
// closes its file when no logger uses it any more. Records logged after
// Close are ignored.
func (l *Logger) Close() error {
	if l == nil {
		return nil
	}
	var err error
	l.closeOne.Do(func() {
		l.closed.Store(true)
		err = releaseSink(l.sink)
	})
	return err
}

// Flush waits until everything queued so far is written (tests, shutdown).
func (l *Logger) Flush() {
	if l == nil || l.closed.Load() {
		return
	}
	done := make(chan struct{})
	l.sink.ch <- item{flush: done}
	<-done
}

type item struct {
	rec    Record
	raw    string
	redact bool
	flush  chan struct{}
}

type sink struct {
	key     string
	refs    int
	ch      chan item
	stop    chan struct{}
	stopped chan struct{}
	w       io.Writer
	closer  io.Closer
}

var (
	sinksMu sync.Mutex
	sinks   = map[string]*sink{}
)

func sinkKey(c *proxyconfig.Audit) string {
	return fmt.Sprintf("%s\x00%d\x00%d\x00%d\x00%t", c.Output, c.MaxSizeMB, c.MaxBackups, c.MaxAgeDays, c.Compress)
}

func acquireSink(c *proxyconfig.Audit) (*sink, error) {
	key := sinkKey(c)
	sinksMu.Lock()
	defer sinksMu.Unlock()
	if s := sinks[key]; s != nil {
		s.refs++
		return s, nil
	}
	s := &sink{key: key, refs: 1, stop: make(chan struct{}), stopped: make(chan struct{})}
	switch c.Output {
	case "stdout":
		s.w = os.Stdout
	case "stderr":
		s.w = os.Stderr
	default:
		// Fail early on an unwritable path (lumberjack would fail on
		// the first write).
		f, err := os.OpenFile(c.Output, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("audit output: %w", err)
		}
		f.Close()
		size := c.MaxSizeMB
		if size == 0 {
			size = DefaultMaxSizeMB
		}
		lj := &lumberjack.Logger{Filename: c.Output, MaxSize: size, MaxBackups: c.MaxBackups, MaxAge: c.MaxAgeDays, Compress: c.Compress}
		s.w, s.closer = lj, lj
	}
	n := c.BufferSize
	if n == 0 {
		n = DefaultBufferSize
	}
	s.ch = make(chan item, n)
	sinks[key] = s
	go s.run()
	return s, nil
}

func releaseSink(s *sink) error {
	sinksMu.Lock()
	s.refs--
	last := s.refs == 0
	if last {
		delete(sinks, s.key)
	}
	sinksMu.Unlock()
	if !last {
		return nil
	}
	close(s.stop)
	<-s.stopped
	if s.closer != nil {
		return s.closer.Close()
	}
	return nil
}

func (s *sink) run() {
	defer close(s.stopped)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	flush := func() {
		if buf.Len() == 0 {
			return
		}
		if _, err := s.w.Write(buf.Bytes()); err != nil {
			slog.Error("audit log write failed", "err", err)
		}
		buf.Reset()
	}
	handle := func(it item) {
		if it.flush != nil {
			flush()
			close(it.flush)
			return
		}
		if it.redact {
			it.rec.SQL = Redact(it.raw)
		}
		if err := enc.Encode(&it.rec); err != nil {
			slog.Error("audit record encoding failed", "err", err)
		}
		if buf.Len() >= 64<<10 {
			flush()
		}
	}
	for {
		select {
		case it := <-s.ch:
			handle(it)
			if len(s.ch) == 0 {
				flush()
			}
		case <-s.stop:
			for {
				select {
				case it := <-s.ch:
					handle(it)
				default:
					flush()
					return
				}
			}
		}
	}
}

// Redact replaces string, hex and numeric literals of sql by "?" (a
// fallback when no fingerprint is known). Identifiers in backquotes are
// kept.
func Redact(sql string) string {
	var b strings.Builder
	b.Grow(len(sql))
	prevIdent := false // previous byte belongs to an identifier
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(sql) {
				if sql[j] == '\\' {
					j += 2
					continue
				}
				if sql[j] == c {
					if j+1 < len(sql) && sql[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			b.WriteByte('?')
			i = min(j+1, len(sql))
			prevIdent = false
		case c == '`':
			j := strings.IndexByte(sql[i+1:], '`')
			if j < 0 {
				b.WriteString(sql[i:])
				return b.String()
			}
			b.WriteString(sql[i : i+j+2])
			i += j + 2
			prevIdent = false
		case c >= '0' && c <= '9' && !prevIdent:
			j := i
			for j < len(sql) && (isAlnum(sql[j]) || sql[j] == '.') {
				j++
			}
			b.WriteByte('?')
			i = j
		default:
			b.WriteByte(c)
			prevIdent = isAlnum(c) || c == '_' || c == '$' || c >= 0x80
			i++
		}
	}
	return b.String()
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
