package cmdutil

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"
)

// UsageError is a bad command line or environment: the program exits 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Code is the exit code for the error a program's run returned: 0 for nil or a help request,
// 2 for a UsageError, 1 otherwise.
func Code(err error) int {
	var ue *UsageError
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp), errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	default:
		return ExitFailure
	}
}

// Report writes "program: error" to w unless the run succeeded or was a help request, and
// returns the exit code.
func Report(w io.Writer, program string, err error) int {
	code := Code(err)
	if code != ExitOK {
		fmt.Fprintf(w, "%s: %v\n", program, err)
		if code == ExitUsage {
			fmt.Fprintf(w, "Run '%s --help' for usage.\n", program)
		}
	}
	return code
}

// Exit reports err on stderr and exits with its code.
func Exit(program string, err error) {
	os.Exit(Report(os.Stderr, program, err))
}
