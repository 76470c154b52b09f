package proxyconfig

import "time"

// PreparedStatements is [proxy.config.prepared_statements]: the bounds of
// what the listener keeps for clients' prepared statements (docs/proxy.md,
// "Prepared statements are the proxy's"). Absent or zero keys take the
// defaults, except MetadataCacheSize, whose 0 turns the cache off.
type PreparedStatements struct {
	// MaxPerConnection bounds the statements kept prepared on one backend
	// connection (least recently used closed first); 0 =
	// DefaultStmtsPerConnection.
	MaxPerConnection int `toml:"max_per_connection,omitempty" json:"max_per_connection,omitempty"`
	// MetadataCacheSize bounds the entries of the listener's cache of
	// prepare responses, which answers a client's COM_STMT_PREPARE without
	// a backend. Unset: DefaultMetadataCacheSize; 0: off.
	MetadataCacheSize *int `toml:"metadata_cache_size,omitempty" json:"metadata_cache_size,omitempty"`
	// MetadataCacheMaxBytes bounds that cache's memory (bytes; 0 =
	// DefaultMetadataCacheMaxBytes).
	MetadataCacheMaxBytes int `toml:"metadata_cache_max_bytes,omitempty" json:"metadata_cache_max_bytes,omitempty"`
	// MetadataCacheMaxAge is how long an entry answers prepares (0 =
	// DefaultMetadataCacheMaxAge): a table changed behind the proxy's back
	// (not through this listener) is seen again after at most this long.
	MetadataCacheMaxAge Duration `toml:"metadata_cache_max_age,omitzero" json:"metadata_cache_max_age,omitzero"`
}

// Prepared statement defaults and limits.
const (
	// DefaultStmtsPerConnection is backend.DefaultMaxStmts (this package
	// imports none of the proxy's): a pool of 64 keeps at most half of
	// MariaDB's default max_prepared_stmt_count (16382, for all
	// connections).
	DefaultStmtsPerConnection = 128
	// MaxStmtsPerConnection is MariaDB's default max_prepared_stmt_count:
	// more on one connection could never be prepared.
	MaxStmtsPerConnection        = 16382
	DefaultMetadataCacheSize     = 1024
	MaxMetadataCacheSize         = 1 << 20
	DefaultMetadataCacheMaxBytes = 8 << 20
	MaxMetadataCacheMaxBytes     = 1 << 30
	DefaultMetadataCacheMaxAge   = time.Minute
	MaxMetadataCacheMaxAge       = 24 * time.Hour
)

// StmtsPerConnection is the effective max_per_connection (p may be nil).
func (p *PreparedStatements) StmtsPerConnection() int {
	if p == nil || p.MaxPerConnection == 0 {
		return DefaultStmtsPerConnection
	}
	return p.MaxPerConnection
}

// MetadataCache returns the effective bounds of the metadata cache (p may
// be nil); entries 0 means off.
func (p *PreparedStatements) MetadataCache() (entries, maxBytes int, maxAge time.Duration) {
	entries, maxBytes, maxAge = DefaultMetadataCacheSize, DefaultMetadataCacheMaxBytes, DefaultMetadataCacheMaxAge
	if p == nil {
		return entries, maxBytes, maxAge
	}
	if p.MetadataCacheSize != nil {
		entries = *p.MetadataCacheSize
	}
	if p.MetadataCacheMaxBytes != 0 {
		maxBytes = p.MetadataCacheMaxBytes
	}
	if p.MetadataCacheMaxAge.Duration != 0 {
		maxAge = p.MetadataCacheMaxAge.Duration
	}
	return entries, maxBytes, maxAge
}

func (c *Config) validatePreparedStatements(v *validator, p string, l *Listener) {
	ps := l.PreparedStatements
	if ps == nil {
		return
	}
	p += ".prepared_statements"
	if n := ps.MaxPerConnection; n < 0 || n > MaxStmtsPerConnection {
		v.addf(p+".max_per_connection", "must be between 0 (default %d) and %d, got %d",
			DefaultStmtsPerConnection, MaxStmtsPerConnection, n)
	}
	if n := ps.MetadataCacheSize; n != nil && (*n < 0 || *n > MaxMetadataCacheSize) {
		v.addf(p+".metadata_cache_size", "must be between 0 (off) and %d, got %d", MaxMetadataCacheSize, *n)
	}
	if n := ps.MetadataCacheMaxBytes; n < 0 || n > MaxMetadataCacheMaxBytes {
		v.addf(p+".metadata_cache_max_bytes", "must be between 0 (default %d) and %d, got %d",
			DefaultMetadataCacheMaxBytes, MaxMetadataCacheMaxBytes, n)
	}
	if d := ps.MetadataCacheMaxAge.Duration; d < 0 || d > MaxMetadataCacheMaxAge {
		v.addf(p+".metadata_cache_max_age", "must be between 0 (default %v) and %v, got %v",
			DefaultMetadataCacheMaxAge, MaxMetadataCacheMaxAge, d)
	}
}
