package audit

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/database-mesh/pisanix-go/internal/proxy/govern/govmetrics"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

func readLines(t *testing.T, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func rate(f float64) *float64 { return &f }

func TestFileRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	reg := prometheus.NewRegistry()
	m := govmetrics.New(reg)
	l, err := Open(&proxyconfig.Audit{Output: path, MaxSizeMB: 1, MaxBackups: 2, MaxAgeDays: 1}, "d", m)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	l.Log(&Record{Time: ts, User: "app", Client: "1.2.3.4:5", Schema: "shop", Digest: "ab", Duration: 1.5, Rows: 3,
		Backend: "db1:3306", Route: "read", Rules: []string{"r1"}}, "select * from t where secret = 'x'", "select * from t where secret = ?")
	l.Log(&Record{Time: ts, User: "app", Error: "ERROR 1064"}, "select 'no fingerprint', 42", "")
	l.Flush()
	recs := readLines(t, path)
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	if !r.Time.Equal(ts) || r.User != "app" || r.Client != "1.2.3.4:5" || r.Schema != "shop" || r.Digest != "ab" ||
		r.Duration != 1.5 || r.Rows != 3 || r.Backend != "db1:3306" || r.Route != "read" || len(r.Rules) != 1 ||
		r.SQL != "select * from t where secret = ?" {
		t.Errorf("record = %+v", r)
	}
	if recs[1].SQL != "select ?, ?" || recs[1].Error != "ERROR 1064" {
		t.Errorf("redacted = %+v", recs[1])
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l.Log(&Record{}, "after close", "") // ignored, no panic
	if n := testutil.ToFloat64(m.AuditRecords("d")); n != 2 {
		t.Errorf("records_total = %v", n)
	}
}

func TestLogSQL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	l, err := Open(&proxyconfig.Audit{Output: path, LogSQL: true}, "d", nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := []byte("select 'secret'")
	l.Log(&Record{}, string(buf), "select ?")
	copy(buf, "XXXXXX") // the caller's buffer is reused
	l.Flush()
	l.Close()
	if recs := readLines(t, path); len(recs) != 1 || recs[0].SQL != "select 'secret'" {
		t.Errorf("%+v", recs)
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := Open(&proxyconfig.Audit{Output: path, MaxSizeMB: 1, MaxBackups: 1, LogSQL: true, BufferSize: 100000}, "d", nil)
	if err != nil {
		t.Fatal(err)
	}
	sql := strings.Repeat("x", 1000)
	for range 2500 { // ~2.6 MB
		l.Log(&Record{User: "u"}, sql, "")
	}
	l.Flush()
	l.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "audit*.log"))
	if len(files) != 2 { // current + max_backups=1
		t.Fatalf("files = %v", files)
	}
	for _, f := range files {
		if st, _ := os.Stat(f); st.Size() > 1<<20 {
			t.Errorf("%s is %d bytes", f, st.Size())
		}
	}
}

func TestWant(t *testing.T) {
	slow := proxyconfig.D(100 * time.Millisecond)
	tests := []struct {
		name       string
		cfg        proxyconfig.Audit
		d          time.Duration
		failed     bool
		want, slow bool
	}{
		{"all default", proxyconfig.Audit{}, time.Millisecond, false, true, false},
		{"sample 0 ordinary", proxyconfig.Audit{SampleRate: rate(0)}, time.Millisecond, false, false, false},
		{"sample 0 error", proxyconfig.Audit{SampleRate: rate(0)}, time.Millisecond, true, true, false},
		{"sample 0 slow", proxyconfig.Audit{SampleRate: rate(0), SlowThreshold: slow}, time.Second, false, true, true},
		{"threshold is inclusive", proxyconfig.Audit{SampleRate: rate(0), SlowThreshold: slow}, 100 * time.Millisecond, false, true, true},
		{"slow only: fast", proxyconfig.Audit{Include: IncludeSlow, SlowThreshold: slow}, time.Millisecond, true, false, false},
		{"slow only: slow", proxyconfig.Audit{Include: IncludeSlow, SlowThreshold: slow}, time.Second, false, true, true},
		{"errors only: ok", proxyconfig.Audit{Include: IncludeErrors}, time.Second, false, false, false},
		{"errors only: failed", proxyconfig.Audit{Include: IncludeErrors, SlowThreshold: slow}, time.Second, true, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Output = filepath.Join(t.TempDir(), "a.log")
			l, err := Open(&tt.cfg, "d", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			want, slow := l.Want(tt.d, tt.failed)
			if want != tt.want || slow != tt.slow {
				t.Errorf("Want = %v, %v; want %v, %v", want, slow, tt.want, tt.slow)
			}
		})
	}
}

func TestSampling(t *testing.T) {
	l, err := Open(&proxyconfig.Audit{Output: filepath.Join(t.TempDir(), "a.log"), SampleRate: rate(0.25)}, "d", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	n := 0
	for range 20000 {
		if w, _ := l.Want(time.Millisecond, false); w {
			n++
		}
	}
	if n < 4000 || n > 6000 {
		t.Errorf("sampled %d of 20000 at 0.25", n)
	}
}

// blockingWriter blocks every write until released.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	n       int
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	w.n += strings.Count(string(p), "\n")
	w.mu.Unlock()
	return len(p), nil
}

func TestDropWhenFull(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := govmetrics.New(reg)
	w := &blockingWriter{release: make(chan struct{})}
	s := &sink{key: "test", refs: 1, ch: make(chan item, 4), stop: make(chan struct{}), stopped: make(chan struct{}), w: w}
	go s.run()
	l := &Logger{include: IncludeAll, sample: 1, sink: s, records: m.AuditRecords("d"), dropped: m.AuditDropped("d")}
	start := time.Now()
	for range 100 {
		l.Log(&Record{}, "x", "x")
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("Log blocked for %s", el)
	}
	dropped := testutil.ToFloat64(m.AuditDropped("d"))
	queued := testutil.ToFloat64(m.AuditRecords("d"))
	if dropped < 90 || queued+dropped != 100 {
		t.Errorf("queued %v dropped %v", queued, dropped)
	}
	close(w.release)
	close(s.stop)
	<-s.stopped
	if float64(w.n) != queued {
		t.Errorf("wrote %d, queued %v", w.n, queued)
	}
}

func TestSharedSink(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	c := &proxyconfig.Audit{Output: path}
	a, _ := Open(c, "a", nil)
	b, _ := Open(c, "b", nil)
	if a.sink != b.sink {
		t.Fatal("same output, different writers")
	}
	a.Log(&Record{Domain: "a"}, "", "q")
	a.Close()
	b.Log(&Record{Domain: "b"}, "", "q") // still open
	b.Flush()
	b.Close()
	if recs := readLines(t, path); len(recs) != 2 {
		t.Errorf("%d records", len(recs))
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		c    proxyconfig.Audit
		want string
	}{
		{proxyconfig.Audit{Output: "x", SampleRate: rate(1.5)}, "sample_rate"},
		{proxyconfig.Audit{Output: "x", Include: "some"}, "include"},
		{proxyconfig.Audit{Output: "x", Include: IncludeSlow}, "needs slow_threshold"},
		{proxyconfig.Audit{Output: "x", MaxSizeMB: -1}, "max_size_mb"},
		{proxyconfig.Audit{Output: "x", SlowThreshold: proxyconfig.D(-1)}, "slow_threshold"},
		{proxyconfig.Audit{Output: "/nonexistent-dir/x/audit.log"}, "audit output"},
	}
	for _, tt := range tests {
		_, err := Open(&tt.c, "d", nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v", tt.c, err)
		}
	}
	if l, err := Open(&proxyconfig.Audit{}, "d", nil); l != nil || err != nil {
		t.Error("empty output must mean off")
	}
	var l *Logger
	l.Log(&Record{}, "", "")
	if w, _ := l.Want(time.Hour, true); w {
		t.Error("nil logger wants records")
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"select 1", "select ?"},
		{"select * from t1 where a = 'x''y' and b = \"q\\\"z\" and c=3.5e2", "select * from t1 where a = ? and b = ? and c=?"},
		{"select `col 1`, x2 from `t'1` where id in (1, 2)", "select `col 1`, x2 from `t'1` where id in (?, ?)"},
		{"insert into t values (0x1f, 'unterminated", "insert into t values (?, ?"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
