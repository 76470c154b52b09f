package cmdutil

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"
)

// Log is the --log-level and --log-format of a program.
type Log struct {
	Level  string
	Format string
}

// LogFlags names the flags' environment variables and the level's default and shorthand.
type LogFlags struct {
	LevelEnv, FormatEnv string
	DefaultLevel        string // "" lets the program decide (pisa-proxy: its config file's)
	LevelShorthand      string // "l" or ""
}

// AddFlags registers --log-level and --log-format on fs, with env fallbacks.
func (l *Log) AddFlags(fs *pflag.FlagSet, env *Env, o LogFlags) {
	levelUsage := "log level: debug, info, warn or error (trace is debug)"
	if o.DefaultLevel == "" {
		levelUsage += "; default: the configuration's"
	}
	fs.StringVarP(&l.Level, "log-level", o.LevelShorthand, env.String(o.LevelEnv, o.DefaultLevel),
		levelUsage+" (env "+o.LevelEnv+")")
	fs.StringVar(&l.Format, "log-format", env.String(o.FormatEnv, "text"),
		"log format: text (logfmt) or json, one object a line (env "+o.FormatEnv+")")
}

// Validate checks both flags; the error is a UsageError naming the flag.
func (l *Log) Validate() error {
	if err := CheckFormat(l.Format); err != nil {
		return &UsageError{Err: fmt.Errorf("--log-format: %w", err)}
	}
	if l.Level != "" {
		if _, err := ParseLevel(l.Level); err != nil {
			return &UsageError{Err: fmt.Errorf("--log-level: %w", err)}
		}
	}
	return nil
}

// ParseLevel reads a level name in any case: TRACE and DEBUG are debug, INFO, WARN or WARNING,
// ERROR.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "TRACE", "DEBUG":
		return slog.LevelDebug, nil
	case "INFO":
		return slog.LevelInfo, nil
	case "WARN", "WARNING":
		return slog.LevelWarn, nil
	case "ERROR":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (debug, info, warn or error)", s)
}

// CheckFormat accepts text and json.
func CheckFormat(f string) error {
	switch f {
	case "text", "json":
		return nil
	}
	return fmt.Errorf("want text or json, got %q", f)
}

// NewLogger returns a logger writing to w in format (text or json) at the level given, and sets
// it as slog's default.
func NewLogger(w io.Writer, format string, level slog.Leveler) (*slog.Logger, error) {
	if err := CheckFormat(format); err != nil {
		return nil, &UsageError{Err: fmt.Errorf("--log-format: %w", err)}
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	l := slog.New(h)
	slog.SetDefault(l)
	return l, nil
}

// Logger builds the logger of l: its level is a LevelVar the program may change later (a
// reloaded configuration), set from --log-level or else from fallback.
func (l *Log) Logger(w io.Writer, fallback slog.Level) (*slog.Logger, *slog.LevelVar, error) {
	if err := l.Validate(); err != nil {
		return nil, nil, err
	}
	lv := new(slog.LevelVar)
	lv.Set(fallback)
	if l.Level != "" {
		lvl, _ := ParseLevel(l.Level)
		lv.Set(lvl)
	}
	logger, err := NewLogger(w, l.Format, lv)
	return logger, lv, err
}
