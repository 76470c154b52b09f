package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/database-mesh/pisanix-go/internal/configsource"
	"github.com/database-mesh/pisanix-go/internal/daemonconfig"
)

// DaemonConfigsPath is the controller's daemon configuration endpoint.
const DaemonConfigsPath = "/apis/configs.database-mesh.io/v1alpha1/daemonconfigs"

// ControllerURL returns the daemonconfigs URL for a controller host
// ("host:port", or a URL with a scheme).
func ControllerURL(host string) string {
	host = strings.TrimRight(host, "/")
	if !strings.Contains(host, "://") {
		host = "http://" + host
	}
	return host + DaemonConfigsPath
}

// A Source delivers configurations: Run calls publish with each new one
// until ctx ends. A source never publishes because of an error: a failed
// fetch keeps the last good configuration in place.
type Source interface {
	Run(ctx context.Context, publish func(*daemonconfig.Config)) error
}

// HTTPSource follows the controller's daemon configuration with configsource.HTTP:
//
//	GET <URL>?node=<node>                                   the current config
//	GET <URL>?node=<node>&watch=true&version=<v>&timeoutSeconds=<n>
//	                                                        long poll: 200 when the version
//	                                                        differs from v, 304 at the timeout
//
// A 200 with the same version is "unchanged" too. A controller that sends no version (Pisanix)
// is polled every PollInterval instead. Errors back off exponentially with full jitter between
// MinBackoff and MaxBackoff. A configuration that does not decode is rejected (OnError) and the
// last good one stays until the next version.
type HTTPSource struct {
	URL  string
	Node string
	// Client defaults to a client without overall timeout (each request is bounded by
	// WatchTimeout + 30 s).
	Client *http.Client
	Logger *slog.Logger
	// WatchTimeout is asked of the server for long polls (default 60 s).
	WatchTimeout time.Duration
	// PollInterval is used for servers without versions (default 10 s).
	PollInterval           time.Duration
	MinBackoff, MaxBackoff time.Duration // default 1 s and 30 s
	// OnError is called for each failed fetch or rejected configuration (metrics).
	OnError func(error)
}

// Run fetches and watches until ctx ends; it returns ctx's error.
func (s *HTTPSource) Run(ctx context.Context, publish func(*daemonconfig.Config)) error {
	u, err := url.Parse(s.URL)
	if err != nil {
		return fmt.Errorf("controller URL: %w", err)
	}
	if s.Node != "" {
		q := u.Query()
		q.Set("node", s.Node)
		u.RawQuery = q.Encode()
	}
	minBackoff, maxBackoff := s.MinBackoff, s.MaxBackoff
	if minBackoff <= 0 {
		minBackoff = time.Second
	}
	if maxBackoff <= 0 {
		maxBackoff = 30 * time.Second
	}
	src := &configsource.HTTP{URL: u.String(), Client: s.Client, WatchTimeout: s.WatchTimeout,
		PollInterval: s.PollInterval, MinBackoff: minBackoff, MaxBackoff: max(maxBackoff, minBackoff),
		What: "daemon config", Logger: s.Logger, OnError: s.OnError}
	return src.Run(ctx, func(c configsource.Config) error {
		cfg, err := daemonconfig.ParseJSON(c.Body)
		if err != nil {
			if s.OnError != nil {
				s.OnError(err)
			}
			return err
		}
		publish(cfg)
		return nil
	})
}

// FileSource is a standalone TOML file, followed with configsource.File: it publishes Initial
// (or the file at start) and reloads the file when its size or modification time changes
// (checked every Interval) or when Reload fires (SIGHUP). A reload that fails, or finds the file
// empty (a write caught half-way), keeps the last good configuration. A file with only
// comments, or "app = []", removes all classes.
type FileSource struct {
	Path     string
	Initial  *daemonconfig.Config
	Interval time.Duration // default 5 s
	Reload   <-chan os.Signal
	Logger   *slog.Logger
	OnError  func(error)
}

// Run publishes the file's configuration and its changes until ctx ends.
func (f *FileSource) Run(ctx context.Context, publish func(*daemonconfig.Config)) error {
	interval := f.Interval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	src := &configsource.File[*daemonconfig.Config]{Path: f.Path, Parse: parseTOMLFile,
		Reload: f.Reload, Interval: interval, Settle: 100 * time.Millisecond, Logger: f.Logger, OnError: f.OnError}
	cfg, err := src.Load()
	if f.Initial != nil {
		cfg, err = f.Initial, nil
	}
	if err != nil {
		return err
	}
	publish(cfg)
	return src.Run(ctx, func(c *daemonconfig.Config) error { publish(c); return nil })
}

func parseTOMLFile(path string, data []byte) (*daemonconfig.Config, error) {
	cfg, err := daemonconfig.ParseTOML(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Run reconciles each configuration src publishes, and the last one again
// every resync (re-resolving host names and repairing drift), until ctx
// ends. It returns src's error if src stops early, else ctx's error.
func Run(ctx context.Context, src Source, rec *Reconciler, resync time.Duration) error {
	if resync <= 0 {
		resync = 30 * time.Second
	}
	var (
		mu     sync.Mutex
		latest *daemonconfig.Config
		wake   = make(chan struct{}, 1)
	)
	publish := func(c *daemonconfig.Config) {
		mu.Lock()
		latest = c
		mu.Unlock()
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srcErr := make(chan error, 1)
	go func() { srcErr <- src.Run(ctx, publish) }()

	t := time.NewTicker(resync)
	defer t.Stop()
	var cur *daemonconfig.Config
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-srcErr:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err == nil {
				err = errors.New("configuration source stopped")
			}
			return err
		case <-wake:
			mu.Lock()
			cur = latest
			mu.Unlock()
		case <-t.C:
			if cur == nil {
				continue
			}
		}
		_ = rec.Reconcile(ctx, cur) // logged and counted by the reconciler
	}
}
