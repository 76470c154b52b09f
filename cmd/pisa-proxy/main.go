// Command pisa-proxy is the Database Mesh's MySQL proxy.
//
//	pisa-proxy daemon -c proxy.toml     standalone, configured from a file
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
	"github.com/database-mesh/pisanix-go/internal/metrics"
	"github.com/database-mesh/pisanix-go/internal/proxy"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/version"
)

type globalFlags struct {
	host     string
	port     string
	logLevel string
}

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "pisa-proxy:", err)
		os.Exit(1)
	}
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Usage()
			return errors.New("a subcommand is required: daemon")
		},
	}
	pf := root.PersistentFlags()
	// -h is --host (Pisanix's CLI); help is --help only.
	pf.Bool("help", false, "help for pisa-proxy")
	pf.StringVarP(&g.host, "host", "h", envOr("PISA_PROXY_ADMIN_LISTEN_HOST", ""), "admin HTTP listen host; overrides [admin] host (env PISA_PROXY_ADMIN_LISTEN_HOST)")
	pf.StringVarP(&g.port, "port", "p", envOr("PISA_PROXY_ADMIN_LISTEN_PORT", ""), "admin HTTP listen port; overrides [admin] port (env PISA_PROXY_ADMIN_LISTEN_PORT)")
	pf.StringVarP(&g.logLevel, "log-level", "l", envOr("PISA_PROXY_ADMIN_LOG_LEVEL", ""), "log level TRACE|DEBUG|INFO|WARN|ERROR; overrides [admin] log_level (env PISA_PROXY_ADMIN_LOG_LEVEL)")
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

func runDaemon(ctx context.Context, g *globalFlags, path string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cfg, err := loadConfig(path, g)
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.Admin.LogLevel))
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)
	logger.Info("starting pisa-proxy", "version", version.Version, "commit", version.GitCommit, "config", path)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.NewProxy(reg)
	p := proxy.New(logger, m)
	reg.MustRegister(metrics.NewPoolCollector(p.PoolStats))

	var current atomicConfig
	current.store(cfg)
	adm := admin.New(admin.Options{
		Addr:     net.JoinHostPort(cfg.Admin.Host, strconv.Itoa(cfg.Admin.Port)),
		Gatherer: reg,
		Ready:    p.Ready,
		Logger:   logger,
		Config:   func() any { return current.load().Redacted() },
	})
	if err := adm.Start(); err != nil {
		return fmt.Errorf("admin server: %w", err)
	}
	logger.Info("admin server listening", "addr", adm.Addr().String())
	if err := p.Apply(cfg); err != nil {
		_ = adm.Shutdown(context.Background())
		return err
	}
	if addr := os.Getenv("PISA_PROXY_PPROF_ADDR"); addr != "" {
		// Profiling endpoints for performance work, off by default.
		go func() {
			logger.Info("pprof listening", "addr", addr)
			if err := http.ListenAndServe(addr, nil); err != nil {
				logger.Warn("pprof server stopped", "error", err)
			}
		}()
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	for {
		select {
		case <-ctx.Done():
			return shutdown(logger, p, adm)
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				logger.Info("shutting down", "signal", sig.String())
				return shutdown(logger, p, adm)
			}
			next, err := loadConfig(path, g)
			if err == nil {
				err = p.Apply(next)
			}
			if err != nil {
				logger.Error("config reload rejected; the previous config keeps serving", "error", err)
				continue
			}
			level.Set(parseLevel(next.Admin.LogLevel))
			current.store(next)
			logger.Info("config reloaded", "config", path)
		}
	}
}

func shutdown(logger *slog.Logger, p *proxy.Proxy, adm *admin.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.Close(ctx)
	if aerr := adm.Shutdown(ctx); aerr != nil && !errors.Is(aerr, context.DeadlineExceeded) {
		err = errors.Join(err, aerr)
	}
	logger.Info("stopped")
	return err
}
