// Package configclient is the sidecar side of the controller's config API:
// it fetches a proxy's configuration, long-polls for changes and reports
// which version the sidecar runs (or why it rejected one).
//
// The contract (served by pisa-controller):
//
//	GET  /apis/configs.database-mesh.io/v1alpha1/namespaces/{ns}/proxyconfigs/{app}
//	     → 200, Pisanix's JSON config plus "version": "<n>"; 404 with a message
//	GET  …/proxyconfigs/{app}?watch=true&version=<n>
//	     → held until the config's version differs from n (or a server
//	       timeout), then 200 with the current config
//	POST …/proxyconfigs/{app}/status  {"pod": "...", "version": "<n>", "error": "..."}
package configclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// Client talks to one controller about one application's config.
type Client struct {
	// Base is the controller's base URL, e.g. http://pisa-controller.pisa-system:8080.
	Base      string
	Namespace string
	App       string
	// Pod names this sidecar in status reports.
	Pod  string
	HTTP *http.Client
}

// HTTPError is a non-2xx answer from the controller.
type HTTPError struct {
	Status int
	Body   string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("controller answered %d: %s", e.Status, e.Body)
}

func (c *Client) path() string {
	return fmt.Sprintf("%s/apis/configs.database-mesh.io/v1alpha1/namespaces/%s/proxyconfigs/%s",
		c.Base, url.PathEscape(c.Namespace), url.PathEscape(c.App))
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// Fetched is one configuration as served: the decoded, defaulted and
// validated config, or the error that made it invalid.
type Fetched struct {
	Config  *proxyconfig.Config
	Version string
	// Invalid is set when the controller served a config that does not
	// decode or validate; Version is still set when it could be read.
	Invalid error
}

// Fetch gets the current config.
func (c *Client) Fetch(ctx context.Context) (*Fetched, error) {
	return c.get(ctx, c.path())
}

// Watch waits for a config whose version differs from version; it returns
// the current one when the server's wait ends without a change (compare
// versions).
func (c *Client) Watch(ctx context.Context, version string) (*Fetched, error) {
	return c.get(ctx, c.path()+"?watch=true&version="+url.QueryEscape(version))
}

func (c *Client) get(ctx context.Context, u string) (*Fetched, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("get proxy config: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read proxy config: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &HTTPError{Status: resp.StatusCode, Body: string(bytes.TrimSpace(body))}
	}
	var head struct {
		Version string `json:"version"`
	}
	_ = json.Unmarshal(body, &head)
	cfg, err := proxyconfig.Parse(body, proxyconfig.JSON)
	if err != nil {
		return &Fetched{Version: head.Version, Invalid: err}, nil
	}
	if len(cfg.Proxy.Config) == 0 {
		return &Fetched{Version: head.Version, Invalid: errors.New("config has no [[proxy.config]] listener")}, nil
	}
	return &Fetched{Config: cfg, Version: head.Version}, nil
}

// Status is a sidecar's report.
type Status struct {
	Pod     string `json:"pod"`
	Version string `json:"version"`
	Error   string `json:"error,omitempty"`
}

// Report tells the controller which version this sidecar applied, or why it
// rejected it.
func (c *Client) Report(ctx context.Context, version string, applyErr error) error {
	st := Status{Pod: c.Pod, Version: version}
	if applyErr != nil {
		st.Error = applyErr.Error()
	}
	b, _ := json.Marshal(st)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.path()+"/status", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("report status: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return &HTTPError{Status: resp.StatusCode}
	}
	return nil
}
