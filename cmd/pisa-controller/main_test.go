package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/database-mesh/pisanix-go/internal/cmdutil"
	"github.com/database-mesh/pisanix-go/internal/inject"
)

func TestFlagsDefaultsArePisanix(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.corePort != 80 || o.webhookPort != 6443 || o.proxyConfigsPort != 8080 ||
		o.webhookCertFile != "/etc/webhook/certs/tls.crt" || o.webhookKeyFile != "/etc/webhook/certs/tls.key" ||
		o.metricsAddr != ":8082" || o.probeAddr != ":8081" || o.leaderElect {
		t.Fatalf("defaults %+v", o)
	}
	// Both spellings of Go flags work, as in Pisanix.
	o, err = parseFlags([]string{"-corePort=8000", "--proxyConfigsPort", "9090", "-leader-elect", "-native-sidecar"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.corePort != 8000 || o.proxyConfigsPort != 9090 || !o.leaderElect || !o.nativeSidecar {
		t.Fatalf("parsed %+v", o)
	}
	// Pisanix's chart's command line (camelCase aliases) and ours (kebab-case) mean the same.
	pisanix, err := parseFlags([]string{"-webhookTLSCertFile=/c", "-webhookTLSKeyFile=/k", "-webhookPort=7443",
		"-corePort=81", "-proxyConfigsPort=8090"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	kebab, err := parseFlags([]string{"--webhook-tls-cert-file=/c", "--webhook-tls-key-file", "/k", "--webhook-port=7443",
		"-core-port=81", "--proxy-configs-port=8090"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if *pisanix != *kebab || kebab.webhookCertFile != "/c" || kebab.webhookKeyFile != "/k" || kebab.webhookPort != 7443 ||
		kebab.corePort != 81 || kebab.proxyConfigsPort != 8090 {
		t.Fatalf("aliases differ: %+v vs %+v", pisanix, kebab)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-corePort=70000"},
		{"-proxyConfigsPort=0"},
		{"-webhook-cert-mode=manual"},
		{"-log-format=xml"},
		{"-no-such-flag"},
		{"--core-port=x"},
		{"extra"},
	} {
		var stderr bytes.Buffer
		_, err := parseFlags(args, &stderr)
		if err == nil {
			t.Errorf("%v: accepted", args)
		} else if cmdutil.Code(err) != cmdutil.ExitUsage {
			t.Errorf("%v: %v is not a usage error", args, err)
		}
	}
	err := run(context.Background(), []string{"-log-level=loud"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "log-level") {
		t.Errorf("bad log level: %v", err)
	}
	for _, help := range []string{"-help", "--help", "-h"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{help}, io.Discard, &out); !errors.Is(err, pflag.ErrHelp) || cmdutil.Code(err) != 0 {
			t.Errorf("%s: %v", help, err)
		}
		// Help shows the kebab-case names only.
		if s := out.String(); !strings.Contains(s, "--proxy-configs-port") || strings.Contains(s, "--proxyConfigsPort") {
			t.Errorf("%s: usage %s", help, s)
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-version"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "Pisa-Controller Release:") {
		t.Fatalf("version: %q", out.String())
	}
}

func TestInjectOptionsFromEnv(t *testing.T) {
	t.Setenv("PISA_PROXY_IMAGE", "registry.local/pisa-proxy:v1")
	t.Setenv("PISA_CONTROLLER_SERVICE", "pisa-controller")
	t.Setenv("PISA_CONTROLLER_NAMESPACE", "pisa-system")
	t.Setenv("PISA_PROXY_ADMIN_LISTEN_HOST", "127.0.0.1")
	t.Setenv("PISA_PROXY_ADMIN_LISTEN_PORT", "6000")
	t.Setenv("PISA_PROXY_ADMIN_LOG_LEVEL", "DEBUG")
	o := injectOptions(&options{nativeSidecar: true}, slog.New(slog.DiscardHandler), nil)
	if o.Image != "registry.local/pisa-proxy:v1" || o.ControllerService != "pisa-controller" ||
		o.ControllerNamespace != "pisa-system" || o.AdminHost != "127.0.0.1" || o.AdminPort != 6000 ||
		o.LogLevel != "DEBUG" || !o.NativeSidecar {
		t.Fatalf("options %+v", o)
	}
	// Pisanix: a non-numeric or non-positive port falls back to the default.
	for _, bad := range []string{"x", "-1", "0", "70000"} {
		t.Setenv("PISA_PROXY_ADMIN_LISTEN_PORT", bad)
		if got := injectOptions(&options{}, slog.New(slog.DiscardHandler), nil).AdminPort; got != inject.DefaultAdminPort {
			t.Errorf("port %q: got %d", bad, got)
		}
	}
}

func TestNoAPIServer(t *testing.T) {
	// With a kubeconfig that does not exist, the controller says so and exits.
	err := run(context.Background(), []string{"-kubeconfig=/nonexistent/kubeconfig"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/kubeconfig") {
		t.Fatalf("got %v", err)
	}
}
