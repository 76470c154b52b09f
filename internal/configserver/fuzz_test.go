package configserver

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// FuzzRequests: any status body and any query answer with a 2xx, 304 or 4xx and never panic;
// a report is recorded only with a pod name.
func FuzzRequests(f *testing.F) {
	f.Add(`{"pod":"p1","version":"5"}`, "watch=true&version=1&timeoutSeconds=0")
	f.Add(`{"pod":"p1","version":5,"error":"bad"}`, "watch=false")
	f.Add(`{"pod":"","version":null}`, "timeoutSeconds=-1")
	f.Add(`[`, "watch=maybe")
	f.Add(`{"pod":"p","version":{"a":1}}`, "node=n1&watch=1&version=x&timeoutSeconds=0")
	st := NewStoreAt(0)
	if _, _, err := st.Set("demo", "shop", testConfig("shop")); err != nil {
		f.Fatal(err)
	}
	if _, _, err := st.SetDaemon("", daemonCfg("10mbit")); err != nil {
		f.Fatal(err)
	}
	if _, _, err := st.Set("demo", "keys", keyGenConfig(nil)); err != nil {
		f.Fatal(err)
	}
	f.Add(`{}`, "pod=shop-1&podUID=u1")
	f.Add(`{}`, "pod=&podUID=u1&watch=true&version=1&timeoutSeconds=0")
	h := (&Server{Store: st, Logger: slog.New(slog.DiscardHandler), MaxWatchTimeout: 1,
		KeyWorkers: &fakeWorkers{ids: map[string]int{}}}).Handler()
	ok := func(t *testing.T, rec *httptest.ResponseRecorder, what string) {
		c := rec.Code
		if !(c >= 200 && c < 300 || c == http.StatusNotModified || c >= 400 && c < 500) {
			t.Fatalf("%s: status %d: %s", what, c, rec.Body.String())
		}
	}
	f.Fuzz(func(t *testing.T, body, query string) {
		q := "?" + url.PathEscape(query)
		if _, err := url.ParseQuery(query); err == nil {
			q = "?" + query
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, APIPrefix+"/namespaces/demo/proxyconfigs/shop/status",
			strings.NewReader(body)))
		ok(t, rec, "status")
		if rec.Code == http.StatusNoContent {
			for _, r := range st.Reports("demo", "shop") {
				if r.Pod == "" {
					t.Fatalf("report without a pod recorded from %q", body)
				}
			}
		}
		for _, path := range []string{APIPrefix + "/namespaces/demo/proxyconfigs/shop", APIPrefix + "/daemonconfigs"} {
			rec = httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.URL.Path, req.URL.RawQuery = path, strings.TrimPrefix(q, "?")
			h.ServeHTTP(rec, req)
			ok(t, rec, path)
			_, _ = io.Copy(io.Discard, rec.Body)
		}
		// A configuration whose key generator needs a worker id: a pod that names itself
		// gets one, in a configuration its sidecar accepts.
		rec = httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path, req.URL.RawQuery = APIPrefix+"/namespaces/demo/proxyconfigs/keys", strings.TrimPrefix(q, "?")
		h.ServeHTTP(rec, req)
		ok(t, rec, "keys")
		if rec.Code == http.StatusOK && req.URL.Query().Get("pod") != "" {
			cfg, err := proxyconfig.Parse(rec.Body.Bytes(), proxyconfig.JSON)
			if err != nil || cfg.Proxy.KeyWorkerID == nil {
				t.Fatalf("pod %q: configuration refused or without a worker id: %v", req.URL.Query().Get("pod"), err)
			}
		}
	})
}
