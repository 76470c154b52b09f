// Command pisa-proxy is the Database Mesh's MySQL proxy.
//
//	pisa-proxy daemon -c proxy.toml     standalone, configured from a file
//	pisa-proxy sidecar                  configured by pisa-controller
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/database-mesh/pisanix-go/internal/admin"
	"github.com/database-mesh/pisanix-go/internal/configclient"
	"github.com/database-mesh/pisanix-go/internal/metrics"
	"github.com/database-mesh/pisanix-go/internal/proxy"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/version"
)

type globalFlags struct {
	host     string
	port     string
	logLevel string
	// pisanixMetrics also exports Pisanix's metric names and label values.
	pisanixMetrics bool
	envErr         error
}

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "pisa-proxy:", err)
		os.Exit(1)
	}
}

// envBool reads a boolean environment variable (1, t, true, 0, f, false in
// any case; unset or empty is false). A bad value is recorded in *bad and
// refused when a subcommand starts.
func envBool(name string, bad *error) bool {
	s := os.Getenv(name)
	if s == "" {
		return false
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		*bad = fmt.Errorf("environment variable %s=%q is not a boolean (true or false)", name, s)
	}
	return v
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "pisa-proxy",
		Short:         "pisa-proxy: the Database Mesh MySQL proxy",
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		// A subcommand is required, as in Pisanix.
		PersistentPreRunE: func(*cobra.Command, []string) error { return g.envErr },
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Usage()
			return errors.New("a subcommand is required: daemon or sidecar")
		},
	}
	pf := root.PersistentFlags()
	// -h is --host (Pisanix's CLI); help is --help only.
	pf.Bool("help", false, "help for pisa-proxy")
	pf.StringVarP(&g.host, "host", "h", envOr("PISA_PROXY_ADMIN_LISTEN_HOST", ""), "admin HTTP listen host; overrides [admin] host (env PISA_PROXY_ADMIN_LISTEN_HOST)")
	pf.StringVarP(&g.port, "port", "p", envOr("PISA_PROXY_ADMIN_LISTEN_PORT", ""), "admin HTTP listen port; overrides [admin] port (env PISA_PROXY_ADMIN_LISTEN_PORT)")
	pf.StringVarP(&g.logLevel, "log-level", "l", envOr("PISA_PROXY_ADMIN_LOG_LEVEL", ""), "log level TRACE|DEBUG|INFO|WARN|ERROR; overrides [admin] log_level (env PISA_PROXY_ADMIN_LOG_LEVEL)")
	pf.BoolVar(&g.pisanixMetrics, "pisanix-metrics", envBool("PISA_PROXY_PISANIX_METRICS", &g.envErr),
		"also export Pisanix's metrics (sql_processed_total, sql_processed_duration, sql_under_processing, pisa_proxy_sql_processed_duration) with its label values, for Pisanix dashboards and alerts (env PISA_PROXY_PISANIX_METRICS=true)")
	root.Flags().BoolP("version", "V", false, "print the version and exit")
	root.SetVersionTemplate("{{.Version}}\n")

	var configPath string
	daemon := &cobra.Command{
		Use:   "daemon",
		Short: "run standalone with a TOML (or JSON) configuration file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd.Context(), g, configPath)
		},
	}
	daemon.Flags().StringVarP(&configPath, "config", "c", "etc/config.toml", "configuration file (.toml or .json)")
	root.AddCommand(daemon)

	sf := &sidecarFlags{}
	sidecar := &cobra.Command{
		Use:   "sidecar",
		Short: "run as a sidecar with the configuration served by pisa-controller",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSidecar(cmd.Context(), g, sf)
		},
	}
	fl := sidecar.Flags()
	fl.StringVar(&sf.service, "pisa-controller-service", envOr("PISA_CONTROLLER_SERVICE", "pisa-controller"), "controller Service name (env PISA_CONTROLLER_SERVICE)")
	fl.StringVar(&sf.namespace, "pisa-controller-namespace", envOr("PISA_CONTROLLER_NAMESPACE", "pisa-system"), "controller namespace (env PISA_CONTROLLER_NAMESPACE)")
	fl.StringVar(&sf.host, "pisa-controller-host", envOr("PISA_CONTROLLER_HOST", ""), "controller host:port or URL; default <service>.<namespace>:8080 (env PISA_CONTROLLER_HOST)")
	fl.StringVar(&sf.deployedNamespace, "pisa-deployed-namespace", envOr("PISA_DEPLOYED_NAMESPACE", "default"), "namespace of the application (env PISA_DEPLOYED_NAMESPACE)")
	fl.StringVar(&sf.deployedName, "pisa-deployed-name", envOr("PISA_DEPLOYED_NAME", "default"), "application (VirtualDatabase) name (env PISA_DEPLOYED_NAME)")
	root.AddCommand(sidecar)
	return root
}

// applyOverrides applies the CLI/env admin overrides to a loaded config.
func applyOverrides(cfg *proxyconfig.Config, g *globalFlags) error {
	if g.host != "" {
		cfg.Admin.Host = g.host
	}
	if g.port != "" {
		p, err := strconv.Atoi(g.port)
		if err != nil || p <= 0 || p > 65535 {
			return fmt.Errorf("invalid admin port %q", g.port)
		}
		cfg.Admin.Port = p
	}
	if g.logLevel != "" {
		cfg.Admin.LogLevel = strings.ToUpper(g.logLevel)
	}
	return nil
}

func parseLevel(s string) slog.Level {
	switch strings.ToUpper(s) {
	case "TRACE", "DEBUG":
		return slog.LevelDebug
	case "WARN", "WARNING":
		return slog.LevelWarn
	case "ERROR":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func loadConfig(path string, g *globalFlags) (*proxyconfig.Config, error) {
	cfg, err := proxyconfig.Load(path)
	if err != nil {
		return nil, err
	}
	if err := applyOverrides(cfg, g); err != nil {
		return nil, err
	}
	return cfg, nil
}

// app is what both modes run: logging, metrics, the proxy and the admin
// server, plus the config currently applied.
type app struct {
	logger  *slog.Logger
	level   *slog.LevelVar
	p       *proxy.Proxy
	m       *metrics.Proxy
	adm     *admin.Server
	current atomicConfig
}

func newApp(adminAddr, logLevel string, pisanixMetrics bool) (*app, error) {
	a := &app{level: new(slog.LevelVar)}
	a.level.Set(parseLevel(logLevel))
	a.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: a.level}))
	slog.SetDefault(a.logger)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.NewProxy(reg)
	if pisanixMetrics {
		m.EnablePisanixNames(reg)
	}
	a.m = m
	a.p = proxy.New(a.logger, m)
	a.p.EnableGovernanceMetrics(reg)
	reg.MustRegister(metrics.NewPoolCollector(a.p.PoolStats), a.p.ParserCollector())
	reg.MustRegister(metrics.NewPacketMemoryCollector(
		func() int64 { u, _ := a.p.PacketMemory(); return u },
		func() int64 { _, l := a.p.PacketMemory(); return l })...)
	a.adm = admin.New(admin.Options{
		Addr:     adminAddr,
		Gatherer: reg,
		Ready:    a.p.Ready,
		Logger:   a.logger,
		Config: func() any {
			if c := a.current.load(); c != nil {
				return c.Redacted()
			}
			return nil
		},
		// PISA_PROXY_ADMIN_TOKEN (the sidecar's way) wins over [admin] token.
		Token: func() string {
			if t := os.Getenv("PISA_PROXY_ADMIN_TOKEN"); t != "" {
				return t
			}
			if c := a.current.load(); c != nil {
				return c.Admin.Token
			}
			return ""
		},
		ShardRoute: a.p.ShardRoute,
	})
	if err := a.adm.Start(); err != nil {
		return nil, fmt.Errorf("admin server: %w", err)
	}
	// admin.Server.Start logs "admin server listening" with the address.
	if addr := os.Getenv("PISA_PROXY_PPROF_ADDR"); addr != "" {
		// Profiling endpoints for performance work, off by default.
		go func() {
			a.logger.Info("pprof listening", "addr", addr)
			if err := http.ListenAndServe(addr, nil); err != nil {
				a.logger.Warn("pprof server stopped", "error", err)
			}
		}()
	}
	return a, nil
}

// errNoListeners refuses a reload that would close every listener.
var errNoListeners = errors.New("the new configuration has no [[proxy.config]] listener and would close every listener " +
	"(a truncated or half-written file?); set allow_no_listeners = true under [proxy] to do it on purpose, or restart")

// apply makes cfg current, all or nothing. Every configuration after the
// first is counted, applied or rejected.
func (a *app) apply(cfg *proxyconfig.Config) error {
	prev := a.current.load()
	err := a.applyNext(prev, cfg)
	if prev != nil {
		a.m.ConfigReload(err == nil)
	}
	return err
}

func (a *app) applyNext(prev, cfg *proxyconfig.Config) error {
	if prev != nil && len(prev.Proxy.Config) > 0 && len(cfg.Proxy.Config) == 0 && !cfg.Proxy.AllowNoListeners {
		return errNoListeners
	}
	if err := a.p.Apply(cfg); err != nil {
		return err
	}
	a.level.Set(parseLevel(cfg.Admin.LogLevel))
	a.current.store(cfg)
	return nil
}

func (a *app) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := a.p.Close(ctx)
	if aerr := a.adm.Shutdown(ctx); aerr != nil && !errors.Is(aerr, context.DeadlineExceeded) {
		err = errors.Join(err, aerr)
	}
	a.logger.Info("stopped")
	return err
}

// fileStamp identifies a version of the config file.
func fileStamp(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d/%d", st.ModTime().UnixNano(), st.Size())
}

func runDaemon(ctx context.Context, g *globalFlags, path string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cfg, err := loadConfig(path, g)
	if err != nil {
		return err
	}
	a, err := newApp(net.JoinHostPort(cfg.Admin.Host, strconv.Itoa(cfg.Admin.Port)), cfg.Admin.LogLevel, g.pisanixMetrics)
	if err != nil {
		return err
	}
	a.logger.Info("starting pisa-proxy", "mode", "daemon", "version", version.Version, "commit", version.GitCommit, "config", path)
	stamp := fileStamp(path)
	if err := a.apply(cfg); err != nil {
		_ = a.adm.Shutdown(context.Background())
		return err
	}
	reload := func(why string) {
		stamp = fileStamp(path)
		next, err := loadConfig(path, g)
		if err == nil {
			err = a.apply(next)
		} else {
			a.m.ConfigReload(false)
		}
		if err != nil {
			a.logger.Error("config reload rejected; the previous config keeps serving", "trigger", why, "error", err)
			return
		}
		a.logger.Info("config reloaded", "config", path, "trigger", why)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	// The file is also watched: a change (mtime or size) reloads it once
	// the file has stayed the same for a tick, so that a file still being
	// written is not read half-way.
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	pending := ""
	for {
		select {
		case <-ctx.Done():
			return a.shutdown()
		case <-tick.C:
			st := fileStamp(path)
			switch {
			case st == "" || st == stamp:
				pending = ""
			case st != pending:
				pending = st // changed: wait for it to settle
			default:
				pending = ""
				reload("file changed")
			}
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				a.logger.Info("shutting down", "signal", sig.String())
				return a.shutdown()
			}
			reload("SIGHUP")
		}
	}
}

type sidecarFlags struct {
	service, namespace, host, deployedNamespace, deployedName string
}

// runSidecar serves the config the controller builds for this application:
// it starts with no listener (and /readyz false), retries until a valid
// config is applied, then follows changes with long polls.
func runSidecar(ctx context.Context, g *globalFlags, f *sidecarFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	host, port := g.host, g.port
	if host == "" {
		host = "0.0.0.0"
	}
	if port == "" {
		port = "5591"
	}
	if _, err := strconv.Atoi(port); err != nil {
		return fmt.Errorf("invalid admin port %q", port)
	}
	a, err := newApp(net.JoinHostPort(host, port), g.logLevel, g.pisanixMetrics)
	if err != nil {
		return err
	}
	base := f.host
	if base == "" {
		base = f.service + "." + f.namespace + ":8080"
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	pod := os.Getenv("POD_NAME")
	if pod == "" {
		pod, _ = os.Hostname()
	}
	a.logger.Info("starting pisa-proxy", "mode", "sidecar", "version", version.Version, "controller", base,
		"namespace", f.deployedNamespace, "app", f.deployedName)
	c := &configclient.Client{Base: base, Namespace: f.deployedNamespace, App: f.deployedName, Pod: pod,
		HTTP: &http.Client{Timeout: 90 * time.Second}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, func(cfg *proxyconfig.Config) error {
			if g.logLevel != "" {
				cfg.Admin.LogLevel = strings.ToUpper(g.logLevel)
			}
			return a.apply(cfg)
		}, configclient.RunOptions{Logger: a.logger})
	}()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	select {
	case <-ctx.Done():
	case sig := <-sigs:
		a.logger.Info("shutting down", "signal", sig.String())
	}
	cancel()
	<-done
	return a.shutdown()
}
