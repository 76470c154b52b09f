package admin

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// With a token, /metrics and /config need it; the probes stay open, so
// kubelet probes keep working.
func TestBearerToken(t *testing.T) {
	token := "s3cret"
	s := New(Options{Config: func() any { return map[string]string{"k": "v"} }, Token: func() string { return token }})
	do := func(path, auth string) int {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		return w.Code
	}
	for _, p := range []string{"/healthz", "/readyz", "/version"} {
		if c := do(p, ""); c != http.StatusOK {
			t.Errorf("%s without token: %d, want 200", p, c)
		}
	}
	for _, p := range []string{"/metrics", "/config", "/nope"} {
		if c := do(p, ""); c != http.StatusUnauthorized {
			t.Errorf("%s without token: %d, want 401", p, c)
		}
		if c := do(p, "Bearer wrong"); c != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d, want 401", p, c)
		}
	}
	if c := do("/config", "Bearer s3cret"); c != http.StatusOK {
		t.Errorf("/config with the token: %d", c)
	}
	if c := do("/metrics", "Bearer s3cret"); c != http.StatusOK {
		t.Errorf("/metrics with the token: %d", c)
	}
	// No token configured (or removed by a reload): open.
	token = ""
	if c := do("/config", ""); c != http.StatusOK {
		t.Errorf("/config without a configured token: %d", c)
	}
}
