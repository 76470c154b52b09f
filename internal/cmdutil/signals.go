package cmdutil

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// SignalContext is parent, cancelled at the first SIGINT or SIGTERM (a second one kills the
// process the default way once stop has been called or the context is done).
func SignalContext(parent context.Context) (ctx context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
}

// Hangups delivers SIGHUP (reload the configuration file) until stop is called.
func Hangups() (hup <-chan os.Signal, stop func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return c, func() { signal.Stop(c) }
}
