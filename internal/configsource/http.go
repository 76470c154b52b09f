package configsource

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/database-mesh/pisanix-go/internal/backoff"
)

// MaxConfigBytes bounds a configuration read from the controller.
const MaxConfigBytes = 16 << 20

// HTTP follows a configuration served by pisa-controller's config API (docs/config.md):
//
//	GET <URL>                                          the current configuration (200)
//	GET <URL>?watch=true&version=<v>&timeoutSeconds=<n>
//	    held until the version differs from v, then 200 with the new one; when the wait ends
//	    unchanged, 304 Not Modified (this controller) or 200 with version v (an older one)
//
// The version is the X-Config-Version header, else the body's top-level "version" field. A
// server that sends no version (Pisanix's controller) is polled every PollInterval and a body
// that differs from the last one is a new configuration. Failed fetches back off exponentially
// with full jitter between MinBackoff and MaxBackoff; a watch answered within a second without
// a change (a server that does not hold requests) waits a second (at most PollInterval) before
// the next request.
type HTTP struct {
	// URL of the configuration; it may carry a query (node=…), kept in every request.
	URL string
	// Client defaults to one without an overall timeout; each request is bounded by
	// WatchTimeout + 30 s.
	Client *http.Client
	// WatchTimeout is asked of the server for long polls (timeoutSeconds); default 60 s.
	WatchTimeout time.Duration
	// PollInterval paces servers without versions or long polls; default 10 s.
	PollInterval           time.Duration
	MinBackoff, MaxBackoff time.Duration // default 500 ms and 30 s
	// What names the configuration in logs ("proxy config").
	What   string
	Logger *slog.Logger
	// OnError is called for each failed fetch (metrics).
	OnError func(error)
}

// Config is one configuration as served.
type Config struct {
	Body    []byte
	Version string // "" when the server sends none
}

// StatusError is an answer other than 200 and 304.
type StatusError struct {
	URL    string
	Status int
	Body   string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("GET %s: controller answered %d %s: %s", e.URL, e.Status, http.StatusText(e.Status), e.Body)
}

func (s *HTTP) defaults() {
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
		s.MinBackoff = 500 * time.Millisecond
	}
	if s.MaxBackoff <= 0 {
		s.MaxBackoff = 30 * time.Second
	}
	if s.What == "" {
		s.What = "config"
	}
}

// Run fetches the configuration, then watches it, until ctx ends; it returns ctx's error.
// apply gets each new version once (an error rejects it: logged, and the running one keeps
// serving until the next version).
func (s *HTTP) Run(ctx context.Context, apply func(Config) error) error {
	s.defaults()
	var (
		seen      string // version last given to apply
		lastBody  []byte // body last given to apply, for servers without versions
		delivered bool
		running   string // version applied
	)
	b := backoff.New(s.MinBackoff, s.MaxBackoff)
	for {
		start := time.Now()
		c, notModified, err := s.fetch(ctx, delivered && seen != "", seen)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if s.OnError != nil {
				s.OnError(err)
			}
			wait := b.Next()
			s.Logger.Warn("cannot get the "+s.What+" from the controller; the running one keeps serving",
				"error", err, "retry_in", wait.Round(time.Millisecond), "running_version", running)
			if !backoff.Sleep(ctx, wait) {
				return ctx.Err()
			}
			continue
		}
		b.Reset()
		changed := !notModified && (!delivered || c.Version != seen || (c.Version == "" && !bytes.Equal(c.Body, lastBody)))
		if changed {
			delivered, seen, lastBody = true, c.Version, c.Body
			if err := apply(c); err != nil {
				s.Logger.Error(s.What+" rejected; the running one keeps serving", "version", c.Version,
					"error", err, "running_version", running)
			} else {
				running = c.Version
				s.Logger.Info(s.What+" applied", "version", c.Version)
			}
			if c.Version != "" {
				continue
			}
		}
		// A server without versions is polled; a watch answered unchanged within a second (a
		// server that does not hold requests) waits a second, not to spin.
		wait := time.Duration(0)
		switch {
		case c.Version == "" && !notModified:
			wait = s.PollInterval
		case time.Since(start) < time.Second:
			wait = min(s.PollInterval, time.Second)
		}
		if !backoff.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

func (s *HTTP) fetch(ctx context.Context, watch bool, version string) (c Config, notModified bool, err error) {
	u, err := url.Parse(s.URL)
	if err != nil {
		return c, false, fmt.Errorf("controller URL: %w", err)
	}
	timeout := 30 * time.Second
	if watch {
		q := u.Query()
		q.Set("watch", "true")
		q.Set("version", version)
		q.Set("timeoutSeconds", strconv.Itoa(int(s.WatchTimeout/time.Second)))
		u.RawQuery = q.Encode()
		timeout += s.WatchTimeout
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return c, false, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.Client.Do(req)
	if err != nil {
		return c, false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxConfigBytes+1))
	if err != nil {
		return c, false, fmt.Errorf("GET %s: read response: %w", u.Redacted(), err)
	}
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return c, true, nil
	case resp.StatusCode != http.StatusOK:
		return c, false, &StatusError{URL: u.Redacted(), Status: resp.StatusCode, Body: snippet(body)}
	case len(body) > MaxConfigBytes:
		return c, false, fmt.Errorf("GET %s: response larger than %d bytes", u.Redacted(), MaxConfigBytes)
	}
	c = Config{Body: body, Version: resp.Header.Get("X-Config-Version")}
	if c.Version == "" {
		c.Version = bodyVersion(body)
	}
	return c, false, nil
}

// bodyVersion reads a top-level "version" (a string or a number); "" if there is none.
func bodyVersion(body []byte) string {
	var head struct {
		Version json.RawMessage `json:"version"`
	}
	if json.Unmarshal(body, &head) != nil || len(head.Version) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(head.Version, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(head.Version, &n) == nil {
		return n.String()
	}
	return ""
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
