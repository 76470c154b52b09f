package proxyconfig

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// The governance rules of a listener (docs/governance.md): Pisanix's
// [proxy.config.plugin] tables (circuit_break, concurrency_control) and,
// beyond Pisanix, access, audit, endpoint_breaker and top_fingerprints.
// These are plain data; internal/proxy/govern compiles them into the
// governance chain. Their validation (Governance.Validate,
// EndpointBreaker.Validate) needs nothing of the data path; what only the
// data path can check (a fingerprint the SQL parser normalizes to nothing,
// an audit file that cannot be opened) is reported when the proxy compiles
// the chain.

// MatchSpec is what a statement rule matches: any of its regexps
// (unanchored Go RE2 syntax, matched against the statement text), or any
// of its fingerprints (normalized fingerprints as shown in the audit log,
// or their 64-digit hex digests). It is shared by circuit_break and
// concurrency_control, whose keys it holds.
type MatchSpec struct {
	// Regex: unanchored regexps matched against the statement text.
	Regex []string `toml:"regex,omitempty" json:"regex,omitempty"`
	// CaseInsensitive makes every regexp of the rule case-insensitive.
	CaseInsensitive bool `toml:"case_insensitive,omitempty" json:"case_insensitive,omitempty"`
	// Fingerprint: normalized fingerprints (as shown in the audit log) or
	// their 64-digit hex digests.
	Fingerprint []string `toml:"fingerprint,omitempty" json:"fingerprint,omitempty"`
}

// Pattern returns the RE2 pattern that Regex[i] stands for (with the (?i)
// flag when CaseInsensitive).
func (m *MatchSpec) Pattern(i int) string {
	if m.CaseInsensitive {
		return "(?i)" + m.Regex[i]
	}
	return m.Regex[i]
}

// Empty reports a spec with nothing to match.
func (m *MatchSpec) Empty() bool { return len(m.Regex) == 0 && len(m.Fingerprint) == 0 }

// validate checks the regexps and fingerprints of the rule called name.
func (m *MatchSpec) validate(name string) error {
	for j, src := range m.Regex {
		if src == "" {
			return fmt.Errorf("%s.regex[%d]: empty regular expression", name, j)
		}
		if _, err := regexp.Compile(m.Pattern(j)); err != nil {
			return fmt.Errorf("%s.regex[%d]: invalid regular expression %q: %v", name, j, src, err)
		}
	}
	for j, f := range m.Fingerprint {
		if strings.TrimSpace(f) == "" {
			return fmt.Errorf("%s.fingerprint[%d]: empty fingerprint", name, j)
		}
	}
	return nil
}

// CircuitBreak is one [[proxy.config.plugin.circuit_break]] rule: it
// rejects statements matching any regex or fingerprint with ERR 1047
// (Pisanix keys regex, case_insensitive; beyond Pisanix: name,
// fingerprint, dry_run). See docs/governance.md.
type CircuitBreak struct {
	// Name names the rule in errors, logs and metrics. Default
	// "circuit_break[<i>]" (i is the rule's index).
	Name string `toml:"name,omitempty" json:"name,omitempty"`
	MatchSpec
	// DryRun counts and logs matches without rejecting.
	DryRun bool `toml:"dry_run,omitempty" json:"dry_run,omitempty"`
}

// CircuitBreakName is the name of circuit_break rule i when it has none.
func CircuitBreakName(i int) string { return fmt.Sprintf("circuit_break[%d]", i) }

// ValidateCircuitBreaks checks circuit_break rules: names unique, something
// to match, valid regexps, no empty fingerprint.
func ValidateCircuitBreaks(rules []CircuitBreak) error {
	seen := make(map[string]int, len(rules))
	for i := range rules {
		r := &rules[i]
		name := r.Name
		if name == "" {
			name = CircuitBreakName(i)
		}
		if j, dup := seen[name]; dup {
			return fmt.Errorf("%s: duplicate rule name %q (also circuit_break[%d])", CircuitBreakName(i), name, j)
		}
		seen[name] = i
		if r.Empty() {
			return fmt.Errorf("%s: needs at least one regex or fingerprint", CircuitBreakName(i))
		}
	}
	for i := range rules {
		if err := rules[i].validate(CircuitBreakName(i)); err != nil {
			return err
		}
	}
	return nil
}

// ConcurrencyControl is one [[proxy.config.plugin.concurrency_control]]
// rule: it limits concurrently executing matching statements (Pisanix keys
// regex, max_concurrency, duration in integer SECONDS; beyond Pisanix:
// name, case_insensitive, fingerprint, dry_run, wait_timeout, max_queue).
type ConcurrencyControl struct {
	// Name names the rule; default "concurrency_control[<i>]".
	Name string `toml:"name,omitempty" json:"name,omitempty"`
	MatchSpec
	// MaxConcurrency: matching statements allowed to run at once. 0 rejects
	// every matching statement.
	MaxConcurrency int `toml:"max_concurrency" json:"max_concurrency"`
	// Duration is the window in integer SECONDS (Pisanix); 0 = always.
	Duration int `toml:"duration" json:"duration"`
	// DryRun: never reject or wait; count statements that would have been.
	DryRun bool `toml:"dry_run,omitempty" json:"dry_run,omitempty"`
	// WaitTimeout > 0 makes statements wait for a slot up to this long
	// instead of being rejected at once.
	WaitTimeout Duration `toml:"wait_timeout,omitzero" json:"wait_timeout,omitzero"`
	// MaxQueue bounds the statements waiting (0 = unbounded; only with
	// wait_timeout).
	MaxQueue int `toml:"max_queue,omitempty" json:"max_queue,omitempty"`
}

// Window returns Duration as a time.Duration.
func (r *ConcurrencyControl) Window() time.Duration { return time.Duration(r.Duration) * time.Second }

// ConcurrencyControlName is the name of concurrency_control rule i when it
// has none.
func ConcurrencyControlName(i int) string { return fmt.Sprintf("concurrency_control[%d]", i) }

// ValidateConcurrencyControls checks concurrency_control rules.
func ValidateConcurrencyControls(rules []ConcurrencyControl) error {
	seen := make(map[string]int, len(rules))
	for i := range rules {
		r := &rules[i]
		p := ConcurrencyControlName(i)
		name := r.Name
		if name == "" {
			name = p
		}
		if j, dup := seen[name]; dup {
			return fmt.Errorf("%s: duplicate rule name %q (also concurrency_control[%d])", p, name, j)
		}
		seen[name] = i
		switch {
		case r.Empty():
			return fmt.Errorf("%s: needs at least one regex or fingerprint", p)
		case r.MaxConcurrency < 0:
			return fmt.Errorf("%s.max_concurrency: must be >= 0, got %d", p, r.MaxConcurrency)
		case r.MaxConcurrency > 1<<30:
			return fmt.Errorf("%s.max_concurrency: too large (%d)", p, r.MaxConcurrency)
		case r.Duration < 0:
			return fmt.Errorf("%s.duration: must be >= 0 seconds, got %d", p, r.Duration)
		case r.Duration > 100*365*24*3600:
			return fmt.Errorf("%s.duration: too large (%d seconds)", p, r.Duration)
		case r.WaitTimeout.Duration < 0:
			return fmt.Errorf("%s.wait_timeout: must be >= 0, got %s", p, r.WaitTimeout.Duration)
		case r.MaxQueue < 0:
			return fmt.Errorf("%s.max_queue: must be >= 0, got %d", p, r.MaxQueue)
		case r.MaxQueue > 0 && r.WaitTimeout.Duration == 0:
			return fmt.Errorf("%s.max_queue: needs wait_timeout > 0", p)
		}
	}
	for i := range rules {
		if err := rules[i].validate(ConcurrencyControlName(i)); err != nil {
			return err
		}
	}
	return nil
}

// Access is [proxy.config.access]: per-user access control.
type Access struct {
	Users []AccessUser `toml:"users" json:"users"`
}

// AccessUser is one [[proxy.config.access.users]] entry.
type AccessUser struct {
	User     string `toml:"user" json:"user"`
	Password string `toml:"password" json:"password"`
	// Schemas the user may use and read or write; empty = any.
	Schemas []string `toml:"schemas,omitempty" json:"schemas,omitempty"`
	// Tables: "db.table", "db.*" or "*"; empty = any table of an allowed
	// schema. Unqualified tables in statements use the session schema.
	Tables []string `toml:"tables,omitempty" json:"tables,omitempty"`
	// Kinds: "read", "write", "ddl", "admin"; empty = all. Transaction
	// and session control (BEGIN, COMMIT, SET, USE...) is always allowed.
	Kinds []string `toml:"kinds,omitempty" json:"kinds,omitempty"`
	// MaxRows limits the rows a SELECT may return; 0 = no limit.
	MaxRows uint64 `toml:"max_rows,omitempty" json:"max_rows,omitempty"`
}

// Access kinds (AccessUser.Kinds, after AccessKind).
const (
	AccessKindRead  = "read"
	AccessKindWrite = "write"
	AccessKindDDL   = "ddl"
	AccessKindAdmin = "admin"
)

// AccessKind returns the kind an AccessUser.Kinds entry names (case and
// surrounding spaces do not matter) and whether it is one.
func AccessKind(k string) (string, bool) {
	k = strings.ToLower(strings.TrimSpace(k))
	switch k {
	case AccessKindRead, AccessKindWrite, AccessKindDDL, AccessKindAdmin:
		return k, true
	}
	return k, false
}

// ParseSchemaName parses an AccessUser.Schemas entry: one identifier,
// plain or backquoted.
func ParseSchemaName(s string) (string, bool) {
	id, rest, ok := ParseIdent(s)
	return id, ok && rest == "" && id != ""
}

// ParseTablePattern parses an AccessUser.Tables entry (surrounding spaces
// ignored): "*" gives db = table = "" (any table), "db.*" gives table = ""
// (any table of db), "db.table" gives both; identifiers may be backquoted.
func ParseTablePattern(t string) (db, table string, err error) {
	t = strings.TrimSpace(t)
	if t == "*" {
		return "", "", nil
	}
	bad := fmt.Errorf("invalid table pattern %q: want \"db.table\", \"db.*\" or \"*\"", t)
	db, rest, ok := ParseIdent(t)
	if !ok || db == "" || !strings.HasPrefix(rest, ".") {
		return "", "", bad
	}
	rest = rest[1:]
	if rest == "*" {
		return db, "", nil
	}
	name, rest, ok := ParseIdent(rest)
	if !ok || name == "" || rest != "" {
		return "", "", bad
	}
	return db, name, nil
}

// ParseIdent reads one identifier as written in access rules, plain (up
// to '.' or end) or backquoted (“ `a“b` “), and returns it with the rest
// of s.
func ParseIdent(s string) (id, rest string, ok bool) {
	if s == "" {
		return "", "", false
	}
	if s[0] != '`' {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			i = len(s)
		}
		id = s[:i]
		if strings.ContainsAny(id, "` \t\r\n;") {
			return "", "", false
		}
		return id, s[i:], true
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] == '`' {
			if i+1 < len(s) && s[i+1] == '`' {
				b.WriteByte('`')
				i++
				continue
			}
			return b.String(), s[i+1:], true
		}
		b.WriteByte(s[i])
	}
	return "", "", false
}

// Validate checks a (nil: nothing to check).
func (a *Access) Validate() error {
	if a == nil {
		return nil
	}
	seen := make(map[string]bool, len(a.Users))
	for i := range a.Users {
		u := &a.Users[i]
		path := fmt.Sprintf("access.users[%d]", i)
		if u.User == "" {
			return fmt.Errorf("%s.user: must not be empty", path)
		}
		if seen[u.User] {
			return fmt.Errorf("%s.user: duplicate user %q", path, u.User)
		}
		seen[u.User] = true
		for j, s := range u.Schemas {
			if _, ok := ParseSchemaName(s); !ok {
				return fmt.Errorf("%s.schemas[%d]: invalid schema name %q", path, j, s)
			}
		}
		for j, t := range u.Tables {
			if _, _, err := ParseTablePattern(t); err != nil {
				return fmt.Errorf("%s.tables[%d]: %v", path, j, err)
			}
		}
		for j, k := range u.Kinds {
			if _, ok := AccessKind(k); !ok {
				return fmt.Errorf("%s.kinds[%d]: unknown kind %q (want read, write, ddl or admin)", path, j, k)
			}
		}
	}
	return nil
}

// Audit is [proxy.config.audit]: an audit log of statements as JSON lines.
type Audit struct {
	// Output: "stdout", "stderr" or a file path. Empty: no audit log.
	Output string `toml:"output" json:"output"`
	// Rotation of a file output (lumberjack): size in megabytes before
	// rotating (default 100), old files kept (0 = all), days kept
	// (0 = forever), gzip old files.
	MaxSizeMB  int  `toml:"max_size_mb,omitempty" json:"max_size_mb,omitempty"`
	MaxBackups int  `toml:"max_backups,omitempty" json:"max_backups,omitempty"`
	MaxAgeDays int  `toml:"max_age_days,omitempty" json:"max_age_days,omitempty"`
	Compress   bool `toml:"compress,omitempty" json:"compress,omitempty"`
	// SampleRate (0..1) of ordinary statements logged with include="all";
	// unset = 1 (every statement).
	SampleRate *float64 `toml:"sample_rate,omitempty" json:"sample_rate,omitempty"`
	// SlowThreshold marks statements at least this long as slow; 0 = off.
	SlowThreshold Duration `toml:"slow_threshold,omitzero" json:"slow_threshold,omitzero"`
	// LogSQL logs the statement text with its literals; default: the
	// fingerprint.
	LogSQL bool `toml:"log_sql,omitempty" json:"log_sql,omitempty"`
	// Include: "all" (default), "slow" or "errors".
	Include string `toml:"include,omitempty" json:"include,omitempty"`
	// BufferSize is the queue length between the data path and the writer
	// (default 4096). Fixed by the first config that opens an output.
	BufferSize int `toml:"buffer_size,omitempty" json:"buffer_size,omitempty"`
}

// Audit.Include values.
const (
	AuditIncludeAll    = "all"
	AuditIncludeSlow   = "slow"
	AuditIncludeErrors = "errors"
)

// Validate checks c (without opening its output).
func (c *Audit) Validate() error {
	switch {
	case c.MaxSizeMB < 0:
		return fmt.Errorf("max_size_mb: must be >= 0, got %d", c.MaxSizeMB)
	case c.MaxBackups < 0:
		return fmt.Errorf("max_backups: must be >= 0, got %d", c.MaxBackups)
	case c.MaxAgeDays < 0:
		return fmt.Errorf("max_age_days: must be >= 0, got %d", c.MaxAgeDays)
	case c.SampleRate != nil && !(*c.SampleRate >= 0 && *c.SampleRate <= 1):
		return fmt.Errorf("sample_rate: must be in [0, 1], got %v", *c.SampleRate)
	case c.SlowThreshold.Duration < 0:
		return fmt.Errorf("slow_threshold: must be >= 0, got %s", c.SlowThreshold.Duration)
	case c.BufferSize < 0:
		return fmt.Errorf("buffer_size: must be >= 0, got %d", c.BufferSize)
	}
	switch c.Include {
	case "", AuditIncludeAll, AuditIncludeErrors:
	case AuditIncludeSlow:
		if c.SlowThreshold.Duration == 0 {
			return errors.New("include: \"slow\" needs slow_threshold")
		}
	default:
		return fmt.Errorf("include: must be \"all\", \"slow\" or \"errors\", got %q", c.Include)
	}
	return nil
}

// EndpointBreaker is [proxy.config.endpoint_breaker]: it stops routing to
// an endpoint whose error rate or latency is too high, before its health
// check notices.
type EndpointBreaker struct {
	// ErrorRate (0..1] trips the breaker; default 0.5.
	ErrorRate float64 `toml:"error_rate,omitempty" json:"error_rate,omitempty"`
	// MinRequests in the window before the rate is considered; default 20.
	MinRequests int `toml:"min_requests,omitempty" json:"min_requests,omitempty"`
	// Window over which the rate is measured; default "10s".
	Window Duration `toml:"window,omitzero" json:"window,omitzero"`
	// OpenFor is how long an open breaker refuses traffic; default "5s".
	OpenFor Duration `toml:"open_for,omitzero" json:"open_for,omitzero"`
	// HalfOpenMax trial requests at once when half-open; default 1.
	HalfOpenMax int `toml:"half_open_max,omitempty" json:"half_open_max,omitempty"`
	// Timeout: a request slower than this counts as a failure; 0 = off.
	Timeout Duration `toml:"timeout,omitzero" json:"timeout,omitzero"`
}

// EndpointBreaker defaults.
const (
	DefaultBreakerErrorRate   = 0.5
	DefaultBreakerMinRequests = 20
	DefaultBreakerWindow      = 10 * time.Second
	DefaultBreakerOpenFor     = 5 * time.Second
	DefaultBreakerHalfOpenMax = 1
)

// WithDefaults returns c with zero fields set to their defaults.
func (c EndpointBreaker) WithDefaults() EndpointBreaker {
	if c.ErrorRate == 0 {
		c.ErrorRate = DefaultBreakerErrorRate
	}
	if c.MinRequests == 0 {
		c.MinRequests = DefaultBreakerMinRequests
	}
	if c.Window.Duration == 0 {
		c.Window.Duration = DefaultBreakerWindow
	}
	if c.OpenFor.Duration == 0 {
		c.OpenFor.Duration = DefaultBreakerOpenFor
	}
	if c.HalfOpenMax == 0 {
		c.HalfOpenMax = DefaultBreakerHalfOpenMax
	}
	return c
}

// Validate checks c (after defaults).
func (c EndpointBreaker) Validate() error {
	c = c.WithDefaults()
	switch {
	case !(c.ErrorRate > 0 && c.ErrorRate <= 1):
		return fmt.Errorf("error_rate: must be in (0, 1], got %v", c.ErrorRate)
	case c.MinRequests < 0:
		return fmt.Errorf("min_requests: must be >= 0, got %d", c.MinRequests)
	case c.Window.Duration < time.Millisecond:
		return fmt.Errorf("window: must be at least 1ms, got %s", c.Window.Duration)
	case c.OpenFor.Duration < 0:
		return fmt.Errorf("open_for: must be positive, got %s", c.OpenFor.Duration)
	case c.HalfOpenMax < 0 || c.HalfOpenMax > 1<<20:
		return fmt.Errorf("half_open_max: must be in [1, 1048576], got %d", c.HalfOpenMax)
	case c.Timeout.Duration < 0:
		return fmt.Errorf("timeout: must be >= 0, got %s", c.Timeout.Duration)
	}
	return nil
}

// Governance is the governance config of one listener, assembled by
// Listener.Governance: Pisanix's plugin rules plus access control, audit
// and the top-fingerprints count.
type Governance struct {
	CircuitBreak       []CircuitBreak
	ConcurrencyControl []ConcurrencyControl
	Access             *Access
	Audit              *Audit
	// TopFingerprints: 0 = the default (20), negative = none.
	TopFingerprints int
}

// Governance assembles the listener's governance rules (Pisanix's plugin
// section plus access control and audit) for the governance chain.
func (l *Listener) Governance() *Governance {
	g := &Governance{Access: l.Access, Audit: l.Audit, TopFingerprints: l.TopFingerprints}
	if l.Plugin != nil {
		g.CircuitBreak = l.Plugin.CircuitBreak
		g.ConcurrencyControl = l.Plugin.ConcurrencyControl
	}
	return g
}

// Validate checks g (nil: nothing to check) and returns its first problem.
func (g *Governance) Validate() error {
	if g == nil {
		return nil
	}
	if err := g.Access.Validate(); err != nil {
		return err
	}
	if err := ValidateCircuitBreaks(g.CircuitBreak); err != nil {
		return err
	}
	if err := ValidateConcurrencyControls(g.ConcurrencyControl); err != nil {
		return err
	}
	if g.Audit != nil {
		if err := g.Audit.Validate(); err != nil {
			return fmt.Errorf("audit.%w", err)
		}
	}
	return nil
}
