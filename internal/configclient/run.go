package configclient

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// Applier makes a config current (atomically: all or nothing).
type Applier func(*proxyconfig.Config) error

// RunOptions tunes Run; zero values take defaults.
type RunOptions struct {
	MinBackoff time.Duration // 500ms
	MaxBackoff time.Duration // 30s
	// PollInterval paces watches when the server answers at once with an
	// unchanged version (a controller without long polling): 5s.
	PollInterval time.Duration
	Logger       *slog.Logger
}

// Run fetches the config until a valid one is applied, then watches for
// changes and applies each new version, until ctx ends. A config that fails
// to decode, validate or apply is rejected whole and reported; the running
// one keeps serving. Fetch errors never replace the running config.
func (c *Client) Run(ctx context.Context, apply Applier, o RunOptions) {
	if o.MinBackoff <= 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 5 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	backoff := o.MinBackoff
	sleep := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	seen := ""    // last version seen (applied or rejected)
	running := "" // version applied
	for ctx.Err() == nil {
		start := time.Now()
		var f *Fetched
		var err error
		if seen == "" {
			f, err = c.Fetch(ctx)
		} else {
			f, err = c.Watch(ctx, seen)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Warn("cannot get proxy config from the controller; retrying", "error", err,
				"retry_in", backoff, "running_version", running)
			jitter := time.Duration(rand.Int64N(int64(backoff)/4 + 1))
			if !sleep(backoff + jitter) {
				return
			}
			backoff = min(backoff*2, o.MaxBackoff)
			continue
		}
		backoff = o.MinBackoff
		if seen != "" && f.Version == seen {
			if time.Since(start) < time.Second && !sleep(o.PollInterval) {
				return
			}
			continue
		}
		seen = f.Version
		if f.Invalid != nil {
			log.Error("proxy config rejected; the running config keeps serving", "version", f.Version,
				"error", f.Invalid, "running_version", running)
			c.report(ctx, log, f.Version, f.Invalid)
			if f.Version == "" {
				// Without a version we cannot watch for the next one: poll.
				seen = ""
				if !sleep(o.PollInterval) {
					return
				}
			}
			continue
		}
		if err := apply(f.Config); err != nil {
			log.Error("proxy config rejected; the running config keeps serving", "version", f.Version,
				"error", err, "running_version", running)
			c.report(ctx, log, f.Version, err)
			continue
		}
		running = f.Version
		log.Info("proxy config applied", "version", f.Version)
		c.report(ctx, log, f.Version, nil)
	}
}

func (c *Client) report(ctx context.Context, log *slog.Logger, version string, err error) {
	if rerr := c.Report(ctx, version, err); rerr != nil {
		log.Debug("status report failed", "error", rerr)
	}
}
