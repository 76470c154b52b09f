package admin

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestShardRoute(t *testing.T) {
	var gotListener, gotSQL, gotDB string
	_, base, _ := start(t, Options{
		Gatherer: prometheus.NewRegistry(),
		ShardRoute: func(listener, sql, db string) (any, error) {
			gotListener, gotSQL, gotDB = listener, sql, db
			switch listener {
			case "nope":
				return nil, fmt.Errorf("%w: no listener %q", ErrNotFound, listener)
			case "two":
				return nil, fmt.Errorf("%w: name one", ErrBadRequest)
			}
			return map[string]string{"route": "single"}, nil
		},
	})
	q := url.Values{"sql": {"SELECT * FROM t WHERE id = 3"}, "db": {"shop"}, "listener": {"main"}}
	code, h, body := get(t, "GET", base+"/sharding/route?"+q.Encode())
	if code != 200 || h.Get("Content-Type") != "application/json" || !strings.Contains(body, `"route": "single"`) {
		t.Fatalf("route: %d %s %q", code, h.Get("Content-Type"), body)
	}
	if gotListener != "main" || gotSQL != "SELECT * FROM t WHERE id = 3" || gotDB != "shop" {
		t.Fatalf("handler got %q %q %q", gotListener, gotSQL, gotDB)
	}
	for _, tc := range []struct {
		query string
		code  int
	}{
		{"", 400},
		{"?db=x", 400},
		{"?sql=SELECT+1&listener=nope", 404},
		{"?sql=SELECT+1&listener=two", 400},
	} {
		if code, _, body := get(t, "GET", base+"/sharding/route"+tc.query); code != tc.code {
			t.Errorf("%q: status %d (%q), want %d", tc.query, code, body, tc.code)
		}
	}
	_, base2, _ := start(t, Options{Gatherer: prometheus.NewRegistry()})
	if code, _, _ := get(t, "GET", base2+"/sharding/route?sql=SELECT+1"); code != 404 {
		t.Fatalf("without sharding: %d, want 404", code)
	}
}
