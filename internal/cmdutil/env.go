// Package cmdutil is the scaffold the three programs (pisa-proxy, pisa-controller, pisa-daemon)
// share: flags with environment fallbacks, --log-format json|text and --log-level, SIGINT/SIGTERM
// and SIGHUP, the version subcommand and flag, and exit codes (0 success or help, 1 failure,
// 2 usage error with a message naming the bad flag, argument or environment variable).
package cmdutil

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"
)

// Env reads environment variables as the defaults of flags. One rule for every program:
//
//   - a variable that is unset, or set to the empty string, leaves the built-in default (a
//     manifest or a helm template renders an optional value as ""; an empty value never means
//     "empty" — to empty a setting, pass the flag: --global-bridge-device="");
//   - a flag given on the command line wins over the variable;
//   - a value that does not parse (a bool, an integer, a duration) is a usage error naming the
//     variable, reported by Err before the program does anything.
type Env struct {
	errs []error
	// Lookup defaults to os.LookupEnv; tests replace it.
	Lookup func(string) (string, bool)
}

func (e *Env) get(name string) (string, bool) {
	lookup := e.Lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	v, ok := lookup(name)
	return v, ok && v != ""
}

// Set reports whether the variable is set to a non-empty value.
func (e *Env) Set(name string) bool {
	_, ok := e.get(name)
	return ok
}

// String returns the variable, or def when it is unset or empty.
func (e *Env) String(name, def string) string {
	if v, ok := e.get(name); ok {
		return v
	}
	return def
}

// Bool returns the variable (1, t, true, 0, f, false in any case), or def.
func (e *Env) Bool(name string, def bool) bool {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("environment variable %s=%q is not a boolean (true or false)", name, v))
		return def
	}
	return b
}

// Int returns the variable as a decimal integer, or def.
func (e *Env) Int(name string, def int) int {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("environment variable %s=%q is not an integer", name, v))
		return def
	}
	return n
}

// Duration returns the variable as a Go duration (30s, 1m), or def.
func (e *Env) Duration(name string, def time.Duration) time.Duration {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("environment variable %s=%q is not a duration (e.g. 30s, 1m)", name, v))
		return def
	}
	return d
}

// Value sets v, the flag's value, from the variable when it is set: v then holds the flag's
// default (register the flag with fs.Var after this). A value v refuses is a usage error naming
// the variable, with v's reason; v keeps its built-in default.
func (e *Env) Value(name string, v pflag.Value) {
	s, ok := e.get(name)
	if !ok {
		return
	}
	if err := v.Set(s); err != nil {
		e.errs = append(e.errs, fmt.Errorf("environment variable %s=%q: %w", name, s, err))
	}
}

// Err returns the bad values met so far, as one usage error (nil if none).
func (e *Env) Err() error {
	if len(e.errs) == 0 {
		return nil
	}
	return &UsageError{Err: errors.Join(e.errs...)}
}
