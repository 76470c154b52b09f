// Package configclient is the sidecar side of the controller's proxy config API, on top of
// configsource.HTTP (the long poll shared with pisa-daemon): it decodes and validates each
// version of a proxy's configuration, hands it to the proxy, and reports which version the
// sidecar runs (or why it rejected one).
//
// The contract (served by pisa-controller, docs/config.md):
//
//	GET  /apis/configs.database-mesh.io/v1alpha1/namespaces/{ns}/proxyconfigs/{app}[?pod=NAME&podUID=UID]
//	     → 200, Pisanix's JSON config plus "version": "<n>" (and, for a pod named, the
//	       proxy.key_worker_id allocated to it when a key generator needs one); 404 with a message
//	GET  …/proxyconfigs/{app}?watch=true&version=<n>&timeoutSeconds=<s>
//	     → held until the config's version differs from n, then 200 with it; 304 Not Modified
//	       when the wait ends unchanged (200 with version n from older controllers: both are
//	       "unchanged")
//	POST …/proxyconfigs/{app}/status  {"pod": "...", "version": "<n>", "error": "..."}
package configclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/database-mesh/pisanix-go/internal/configsource"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// Client talks to one controller about one application's config.
type Client struct {
	// Base is the controller's base URL, e.g. http://pisa-controller.pisa-system:8080.
	Base      string
	Namespace string
	App       string
	// Pod names this sidecar in status reports and in its config requests
	// (the config server allocates each pod its own key generator worker
	// id); PodUID, when known, tells a pod from an earlier one of the same
	// name.
	Pod    string
	PodUID string
	HTTP   *http.Client
}

// HTTPError is a non-2xx answer to a status report.
type HTTPError struct {
	Status int
	Body   string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("controller answered %d: %s", e.Status, e.Body)
}

// URL is the application's config URL.
func (c *Client) URL() string {
	return fmt.Sprintf("%s/apis/configs.database-mesh.io/v1alpha1/namespaces/%s/proxyconfigs/%s",
		c.Base, url.PathEscape(c.Namespace), url.PathEscape(c.App))
}

// configURL is URL with the pod's identity for the config server.
func (c *Client) configURL() string {
	q := url.Values{}
	if c.Pod != "" {
		q.Set("pod", c.Pod)
	}
	if c.PodUID != "" {
		q.Set("podUID", c.PodUID)
	}
	if len(q) == 0 {
		return c.URL()
	}
	return c.URL() + "?" + q.Encode()
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// Decode decodes, defaults and validates a served configuration. A configuration without a
// listener is refused: a sidecar has nothing to serve with it.
func Decode(body []byte) (*proxyconfig.Config, error) {
	cfg, err := proxyconfig.Parse(body, proxyconfig.JSON)
	if err != nil {
		return nil, err
	}
	if len(cfg.Proxy.Config) == 0 {
		return nil, errors.New("config has no [[proxy.config]] listener")
	}
	return cfg, nil
}

// Applier makes a config current (atomically: all or nothing).
type Applier func(*proxyconfig.Config) error

// RunOptions tunes Run; zero values take configsource.HTTP's defaults.
type RunOptions struct {
	MinBackoff, MaxBackoff time.Duration
	// PollInterval paces a controller that answers watches at once or sends no version.
	PollInterval time.Duration
	// WatchTimeout is asked of the controller for each long poll.
	WatchTimeout time.Duration
	Logger       *slog.Logger
}

// Run fetches the config until a valid one is applied, then watches for changes and applies
// each new version, until ctx ends. A config that fails to decode, validate or apply is
// rejected whole and reported; the running one keeps serving. Fetch errors never replace the
// running config.
func (c *Client) Run(ctx context.Context, apply Applier, o RunOptions) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	src := &configsource.HTTP{URL: c.configURL(), Client: c.http(), WatchTimeout: o.WatchTimeout,
		PollInterval: o.PollInterval, MinBackoff: o.MinBackoff, MaxBackoff: o.MaxBackoff,
		What: "proxy config", Logger: log}
	_ = src.Run(ctx, func(got configsource.Config) error {
		cfg, err := Decode(got.Body)
		if err == nil {
			err = apply(cfg)
		}
		if rerr := c.Report(ctx, got.Version, err); rerr != nil {
			log.Debug("status report failed", "error", rerr)
		}
		return err
	})
}

// Status is a sidecar's report.
type Status struct {
	Pod     string `json:"pod"`
	Version string `json:"version"`
	Error   string `json:"error,omitempty"`
}

// Report tells the controller which version this sidecar applied, or why it rejected it.
func (c *Client) Report(ctx context.Context, version string, applyErr error) error {
	st := Status{Pod: c.Pod, Version: version}
	if applyErr != nil {
		st.Error = applyErr.Error()
	}
	b, _ := json.Marshal(st)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL()+"/status", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("report status: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return &HTTPError{Status: resp.StatusCode, Body: string(bytes.TrimSpace(body))}
	}
	return nil
}
