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
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/database-mesh/pisanix-go/internal/admin"
	"github.com/database-mesh/pisanix-go/internal/cmdutil"
	"github.com/database-mesh/pisanix-go/internal/configclient"
	"github.com/database-mesh/pisanix-go/internal/configsource"
	"github.com/database-mesh/pisanix-go/internal/metrics"
	"github.com/database-mesh/pisanix-go/internal/proxy"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/version"
)

type globalFlags struct {
	host string
	port string
	log  cmdutil.Log
	// pisanixMetrics also exports Pisanix's metric names and label values.
	pisanixMetrics bool
	env            cmdutil.Env
}

func main() {
	ctx, stop := cmdutil.SignalContext(context.Background())
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	cmdutil.Exit("pisa-proxy", err)
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "pisa-proxy",
		Short: "pisa-proxy: the Database Mesh MySQL proxy",
		Args:  cobra.NoArgs,
		// Bad environment values and log flags are usage errors, before anything starts.
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if err := g.env.Err(); err != nil {
				return err
			}
			if g.port != "" {
				if p, err := strconv.Atoi(g.port); err != nil || p <= 0 || p > 65535 {
					return cmdutil.Usagef("--port (or PISA_PROXY_ADMIN_LISTEN_PORT): invalid admin port %q", g.port)
				}
			}
			return g.log.Validate()
		},
		// A subcommand is required, as in Pisanix.
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Usage()
			return cmdutil.Usagef("a subcommand is required: daemon or sidecar")
		},
	}
	pf := root.PersistentFlags()
	env := &g.env
	// -h is --host (Pisanix's CLI); help is --help only.
	pf.Bool("help", false, "help for pisa-proxy")
	pf.StringVarP(&g.host, "host", "h", env.String("PISA_PROXY_ADMIN_LISTEN_HOST", ""), "admin HTTP listen host; overrides [admin] host (env PISA_PROXY_ADMIN_LISTEN_HOST)")
	pf.StringVarP(&g.port, "port", "p", env.String("PISA_PROXY_ADMIN_LISTEN_PORT", ""), "admin HTTP listen port; overrides [admin] port (env PISA_PROXY_ADMIN_LISTEN_PORT)")
	g.log.AddFlags(pf, env, cmdutil.LogFlags{LevelEnv: "PISA_PROXY_ADMIN_LOG_LEVEL", FormatEnv: "PISA_PROXY_LOG_FORMAT",
		LevelShorthand: "l"})
	pf.BoolVar(&g.pisanixMetrics, "pisanix-metrics", env.Bool("PISA_PROXY_PISANIX_METRICS", false),
		"also export Pisanix's metrics (sql_processed_total, sql_processed_duration, sql_under_processing, pisa_proxy_sql_processed_duration) with its label values, for Pisanix dashboards and alerts (env PISA_PROXY_PISANIX_METRICS=true)")

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
	fl.StringVar(&sf.service, "pisa-controller-service", env.String("PISA_CONTROLLER_SERVICE", "pisa-controller"), "controller Service name (env PISA_CONTROLLER_SERVICE)")
	fl.StringVar(&sf.namespace, "pisa-controller-namespace", env.String("PISA_CONTROLLER_NAMESPACE", "pisa-system"), "controller namespace (env PISA_CONTROLLER_NAMESPACE)")
	fl.StringVar(&sf.host, "pisa-controller-host", env.String("PISA_CONTROLLER_HOST", ""), "controller host:port or URL; default <service>.<namespace>:8080 (env PISA_CONTROLLER_HOST)")
	fl.StringVar(&sf.deployedNamespace, "pisa-deployed-namespace", env.String("PISA_DEPLOYED_NAMESPACE", "default"), "namespace of the application (env PISA_DEPLOYED_NAMESPACE)")
	fl.StringVar(&sf.deployedName, "pisa-deployed-name", env.String("PISA_DEPLOYED_NAME", "default"), "application (VirtualDatabase) name (env PISA_DEPLOYED_NAME)")
	root.AddCommand(sidecar)
	root.AddCommand(newEncryptCmd())
	cmdutil.Setup(root, "Pisa-Proxy")
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
	if g.log.Level != "" {
		cfg.Admin.LogLevel = strings.ToUpper(g.log.Level)
	}
	return nil
}

// parseLevel reads a validated [admin] log_level (or --log-level).
func parseLevel(s string) slog.Level {
	l, err := cmdutil.ParseLevel(s)
	if err != nil {
		return slog.LevelInfo
	}
	return l
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

func newApp(adminAddr string, g *globalFlags, level string) (*app, error) {
	a := &app{}
	var err error
	if a.logger, a.level, err = g.log.Logger(os.Stderr, parseLevel(level)); err != nil {
		return nil, err
	}
	pisanixMetrics := g.pisanixMetrics
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.NewProxy(reg)
	if pisanixMetrics {
		m.EnablePisanixNames(reg)
	}
	a.m = m
	a.p = proxy.New(a.logger, m)
	a.p.EnableGovernanceMetrics(reg)
	a.p.EnableSecurityMetrics(reg)
	reg.MustRegister(metrics.NewPoolCollector(a.p.PoolStats), a.p.ParserCollector(), a.p.StmtMetaCollector())
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

func runDaemon(ctx context.Context, g *globalFlags, path string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	hup, stopHup := cmdutil.Hangups()
	defer stopHup()
	src := &configsource.File[*proxyconfig.Config]{
		Path: path,
		Parse: func(path string, data []byte) (*proxyconfig.Config, error) {
			cfg, err := proxyconfig.ParseFile(path, data)
			if err != nil {
				return nil, err
			}
			return cfg, applyOverrides(cfg, g)
		},
		// The file is watched as well: a change (mtime or size) reloads it once it has stayed
		// the same for Settle, so that a file still being written is not read half-way.
		Reload:   hup,
		Interval: 500 * time.Millisecond,
	}
	cfg, err := src.Load()
	if err != nil {
		return err
	}
	a, err := newApp(net.JoinHostPort(cfg.Admin.Host, strconv.Itoa(cfg.Admin.Port)), g, cfg.Admin.LogLevel)
	if err != nil {
		return err
	}
	a.logger.Info("starting pisa-proxy", "mode", "daemon", "version", version.Version, "commit", version.GitCommit, "config", path)
	if err := a.apply(cfg); err != nil {
		_ = a.adm.Shutdown(context.Background())
		return err
	}
	src.Logger = a.logger
	src.OnError = func(error) { a.m.ConfigReload(false) }
	_ = src.Run(ctx, a.apply)
	a.logger.Info("shutting down")
	return a.shutdown()
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
	a, err := newApp(net.JoinHostPort(host, port), g, "INFO")
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
		PodUID: os.Getenv("POD_UID")}
	c.Run(ctx, func(cfg *proxyconfig.Config) error {
		if g.log.Level != "" {
			cfg.Admin.LogLevel = strings.ToUpper(g.log.Level)
		}
		return a.apply(cfg)
	}, configclient.RunOptions{Logger: a.logger, PollInterval: 5 * time.Second})
	a.logger.Info("shutting down")
	return a.shutdown()
}
