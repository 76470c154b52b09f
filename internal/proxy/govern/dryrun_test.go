package govern

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

type captureHandler struct{ n *int }

func (h captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h captureHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "dry_run") {
		*h.n++
	}
	return nil
}
func (h captureHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h captureHandler) WithGroup(string) slog.Handler      { return h }

func TestDryRunLogRateLimited(t *testing.T) {
	n := 0
	now := time.Unix(1000, 0)
	st := NewState("d", nil, StateOptions{Logger: slog.New(captureHandler{&n}), Clock: func() time.Time { return now }})
	c, err := Compile(&proxyconfig.Governance{CircuitBreak: []proxyconfig.CircuitBreak{{Name: "w", MatchSpec: regexSpec("x"), DryRun: true}}}, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := req("u", "x", nil)
	for range 100 {
		if _, rej := c.Check(context.Background(), r); rej != nil {
			t.Fatal(rej)
		}
	}
	now = now.Add(time.Second)
	c.Check(context.Background(), r)
	if n != 2 {
		t.Errorf("%d dry-run log lines, want 2 (one per second)", n)
	}
}
