package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

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

// HTTPSource fetches the configuration from the controller and watches it:
//
//	GET <URL>?node=<node>                                   the current config
//	GET <URL>?node=<node>&watch=true&version=<v>&timeoutSeconds=<n>
//	                                                        long poll: returns when the
//	                                                        version differs from v (200), or
//	                                                        304 Not Modified at the timeout
//
// A 200 with the same version is "unchanged" too. A controller that sends
// no version (Pisanix) is polled every PollInterval instead. Errors back
// off exponentially between MinBackoff and MaxBackoff.
type HTTPSource struct {
	URL  string
	Node string
	// Client defaults to a client without overall timeout (each request
	// is bounded by WatchTimeout + 30 s).
	Client *http.Client
	Logger *slog.Logger
	// WatchTimeout is asked of the server for long polls (default 60 s).
	WatchTimeout time.Duration
	// PollInterval is used for servers without versions (default 10 s).
	PollInterval           time.Duration
	MinBackoff, MaxBackoff time.Duration
	// OnError is called for each failed fetch (metrics).
	OnError func(error)
}

const maxConfigBytes = 16 << 20

func (s *HTTPSource) defaults() {
	if s.Client == nil {
		s.Client = &http.Client{}
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.WatchTimeout <= 0 {
		s.WatchTimeout = 60 * time.Second
	}
	if s.PollInterval <= 0 {
		s.PollInterval = 10 * time.Second
	}
	if s.MinBackoff <= 0 {
		s.MinBackoff = time.Second
	}
	if s.MaxBackoff < s.MinBackoff {
		s.MaxBackoff = max(30*time.Second, s.MinBackoff)
	}
}

// Run fetches and watches until ctx ends; it returns ctx's error.
func (s *HTTPSource) Run(ctx context.Context, publish func(*daemonconfig.Config)) error {
	s.defaults()
	var (
		version   string // last published version
		lastBody  []byte // last published body, for servers without versions
		published bool
		backoff   = s.MinBackoff
	)
	for {
		watch := published && version != ""
		start := time.Now()
		cfg, body, notModified, err := s.fetch(ctx, watch, version)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if s.OnError != nil {
				s.OnError(err)
			}
			wait := jitter(backoff)
			s.Logger.Warn("fetch daemon config from the controller failed; keeping the last good config",
				"url", s.URL, "err", err, "retry_in", wait.Round(time.Millisecond))
			backoff = min(backoff*2, s.MaxBackoff)
			if !sleep(ctx, wait) {
				return ctx.Err()
			}
			continue
		}
		backoff = s.MinBackoff
		switch {
		case notModified:
		case cfg.Version == "":
			// No versions: publish changes, then poll.
			if !published || !bytes.Equal(body, lastBody) {
				published, lastBody, version = true, body, ""
				publish(cfg)
			}
			if !sleep(ctx, s.PollInterval) {
				return ctx.Err()
			}
			continue
		case published && cfg.Version == version:
		default:
			published, version, lastBody = true, cfg.Version, body
			s.Logger.Info("daemon config received", "version", version)
			publish(cfg)
			continue
		}
		// Unchanged: a long poll that ended at once means the server does
		// not hold requests; do not spin.
		if time.Since(start) < time.Second && !sleep(ctx, min(s.PollInterval, time.Second)) {
			return ctx.Err()
		}
	}
}

func (s *HTTPSource) fetch(ctx context.Context, watch bool, version string) (cfg *daemonconfig.Config, body []byte, notModified bool, err error) {
	u, err := url.Parse(s.URL)
	if err != nil {
		return nil, nil, false, fmt.Errorf("controller URL: %w", err)
	}
	q := u.Query()
	if s.Node != "" {
		q.Set("node", s.Node)
	}
	timeout := 30 * time.Second
	if watch {
		q.Set("watch", "true")
		q.Set("version", version)
		q.Set("timeoutSeconds", fmt.Sprint(int(s.WatchTimeout/time.Second)))
		timeout += s.WatchTimeout
	}
	u.RawQuery = q.Encode()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, false, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.Client.Do(req)
	if err != nil {
		return nil, nil, false, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxConfigBytes+1))
	if err != nil {
		return nil, nil, false, fmt.Errorf("read response: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return nil, nil, true, nil
	case resp.StatusCode != http.StatusOK:
		return nil, nil, false, fmt.Errorf("GET %s: %s: %s", u.Redacted(), resp.Status, snippet(body))
	case len(body) > maxConfigBytes:
		return nil, nil, false, fmt.Errorf("GET %s: response larger than %d bytes", u.Redacted(), maxConfigBytes)
	}
	cfg, err = daemonconfig.ParseJSON(body)
	if err != nil {
		return nil, nil, false, fmt.Errorf("GET %s: %w", u.Redacted(), err)
	}
	return cfg, body, false, nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// FileSource is a standalone TOML file. It publishes Initial (or the file
// at start) and reloads the file when its size or modification time
// changes (checked every Interval) or when Reload fires (SIGHUP). A reload
// that fails, or finds the file empty, keeps the last good configuration.
type FileSource struct {
	Path     string
	Initial  *daemonconfig.Config
	Interval time.Duration
	Reload   <-chan os.Signal
	Logger   *slog.Logger
	OnError  func(error)
}

// Run publishes the file's configuration and its changes until ctx ends.
func (f *FileSource) Run(ctx context.Context, publish func(*daemonconfig.Config)) error {
	if f.Logger == nil {
		f.Logger = slog.Default()
	}
	if f.Interval <= 0 {
		f.Interval = 5 * time.Second
	}
	stamp := func() string {
		fi, err := os.Stat(f.Path)
		if err != nil {
			return ""
		}
		return fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
	}
	last := stamp()
	cfg := f.Initial
	if cfg == nil {
		var err error
		if cfg, err = daemonconfig.LoadFile(f.Path); err != nil {
			return err
		}
	}
	publish(cfg)
	t := time.NewTicker(f.Interval)
	defer t.Stop()
	for {
		forced := false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-f.Reload:
			forced = true
		}
		cur := stamp()
		if !forced && cur == last {
			continue
		}
		// Let a write in progress finish: load only a file that did not
		// change for settleDelay, and that did not change while read.
		if !sleep(ctx, settleDelay) {
			return ctx.Err()
		}
		if stamp() != cur {
			continue // still changing; the next tick sees it
		}
		next, err := loadSettled(f.Path)
		if err == nil && stamp() != cur {
			continue
		}
		last = cur
		if err != nil {
			if f.OnError != nil {
				f.OnError(err)
			}
			f.Logger.Error("reload config file failed; keeping the last good config", "path", f.Path, "err", err)
			continue
		}
		f.Logger.Info("config file reloaded", "path", f.Path)
		publish(next)
	}
}

// settleDelay is how long a changed file must stay unchanged before it is
// reloaded.
const settleDelay = 100 * time.Millisecond

// loadSettled loads a file for a reload. An empty file is refused: it is
// almost always a write caught half-way (truncated, not yet written), and
// applying it would lift every limit. A file with only comments, or
// "app = []", still removes all classes.
func loadSettled(path string) (*daemonconfig.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s: file is empty", path)
	}
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
