// Command pisa-controller is the control plane of the mesh: it turns the
// core.database-mesh.io custom resources into the configurations served to the pisa-proxy
// sidecars and pisa-daemon agents (config API on --proxy-configs-port), writes their status, and
// injects the pisa-proxy sidecar into labelled pods (mutating webhook on --webhook-port).
//
// Flags are kebab-case; Pisanix's camelCase names (-corePort, -webhookPort, -proxyConfigsPort,
// -webhookTLSCertFile, -webhookTLSKeyFile) are kept as aliases (docs/controller.md); run with
// --help for the list.
//
// Two offline commands show what the mesh will do before anything is applied (no cluster needed):
//
//	pisa-controller inject -f pod.yaml           the pod as the webhook would admit it
//	pisa-controller build-config -f crds.yaml    the proxy configuration built for a VirtualDatabase
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
	"github.com/database-mesh/pisanix-go/internal/cmdutil"
	"github.com/database-mesh/pisanix-go/internal/configserver"
	"github.com/database-mesh/pisanix-go/internal/controller"
	"github.com/database-mesh/pisanix-go/internal/inject"
	"github.com/database-mesh/pisanix-go/internal/version"
	"github.com/database-mesh/pisanix-go/internal/webhook"
)

// LeaderElectionID is Pisanix's lease name.
const LeaderElectionID = "pisa-controller.database-mesh.io"

type options struct {
	kubeconfig string

	corePort         int
	webhookPort      int
	proxyConfigsPort int
	webhookCertFile  string
	webhookKeyFile   string

	metricsAddr string
	probeAddr   string

	leaderElect             bool
	leaderElectionNamespace string

	webhookCertMode      string
	webhookCertSecret    string
	webhookConfiguration string
	webhookService       string
	webhookIPs           string
	nativeSidecar        bool

	log     cmdutil.Log
	version bool
}

// envOr is the environment rule of every program (cmdutil.Env): unset or empty is the default.
func envOr(name, def string) string {
	return (&cmdutil.Env{}).String(name, def)
}

// pisanixFlags are Pisanix's camelCase flag names, kept as aliases of the kebab-case ones.
var pisanixFlags = map[string]string{
	"corePort":           "core-port",
	"webhookPort":        "webhook-port",
	"proxyConfigsPort":   "proxy-configs-port",
	"webhookTLSCertFile": "webhook-tls-cert-file",
	"webhookTLSKeyFile":  "webhook-tls-key-file",
}

// parseFlags reads the command line. Flags take one or two dashes (-core-port=80, --core-port 80)
// and Pisanix's camelCase names (-corePort=80) still work; errors are cmdutil.UsageErrors naming
// the flag.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	env := &cmdutil.Env{}
	fs := pflag.NewFlagSet("pisa-controller", pflag.ContinueOnError)
	// pflag would print errors and usage itself; Exit prints the error, help prints the usage.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "path to a kubeconfig; empty: $KUBECONFIG, in-cluster, ~/.kube/config")
	fs.IntVar(&o.corePort, "core-port", 80, "port of the core server (GET /healthz, Pisanix); 0 disables it (alias -corePort)")
	fs.IntVar(&o.webhookPort, "webhook-port", 6443, "HTTPS port of the sidecar injection webhook; 0 disables it (alias -webhookPort)")
	fs.IntVar(&o.proxyConfigsPort, "proxy-configs-port", 8080, "port of the config API served to pisa-proxy sidecars and pisa-daemon (alias -proxyConfigsPort)")
	fs.StringVar(&o.webhookCertFile, "webhook-tls-cert-file", "/etc/webhook/certs/tls.crt", "webhook serving certificate (--webhook-cert-mode=file; alias -webhookTLSCertFile)")
	fs.StringVar(&o.webhookKeyFile, "webhook-tls-key-file", "/etc/webhook/certs/tls.key", "webhook serving key (--webhook-cert-mode=file; alias -webhookTLSKeyFile)")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8082", "address of the Prometheus /metrics endpoint; 0 disables it")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz; 0 disables it")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "elect a leader among replicas (only the leader writes status)")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: the controller's namespace)")
	fs.StringVar(&o.webhookCertMode, "webhook-cert-mode", "auto", "self: create and rotate a serving certificate in a Secret and patch the webhook's caBundle; file: read --webhook-tls-cert-file/--webhook-tls-key-file and reload them on change; auto: file when both files exist, else self")
	fs.StringVar(&o.webhookCertSecret, "webhook-cert-secret", "pisa-controller-webhook-cert", "Secret holding the self-managed webhook certificate (--webhook-cert-mode=self)")
	fs.StringVar(&o.webhookConfiguration, "webhook-configuration", "pisa-controller.database-mesh.io", "MutatingWebhookConfiguration whose caBundle the controller keeps (--webhook-cert-mode=self)")
	fs.StringVar(&o.webhookService, "webhook-service", "", "Service name in the webhook certificate (default $PISA_CONTROLLER_SERVICE)")
	fs.StringVar(&o.webhookIPs, "webhook-ip-sans", "", "comma-separated IP addresses added to the self-managed webhook certificate")
	fs.BoolVar(&o.nativeSidecar, "native-sidecar", false, "inject pisa-proxy as a native sidecar (init container with restartPolicy Always; Kubernetes 1.29+)")
	o.log.AddFlags(fs, env, cmdutil.LogFlags{LevelEnv: "PISA_CONTROLLER_LOG_LEVEL", FormatEnv: "PISA_CONTROLLER_LOG_FORMAT",
		DefaultLevel: "info"})
	fs.BoolVarP(&o.version, "version", "V", false, "print the version and exit")
	cmdutil.Aliases(fs, pisanixFlags)
	if err := fs.Parse(cmdutil.SingleDashLong(fs, args)); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(stderr, "Usage: pisa-controller [flags]\n       pisa-controller inject|build-config|version ...\n\nFlags:\n%s", fs.FlagUsages())
			return nil, err
		}
		return nil, &cmdutil.UsageError{Err: err}
	}
	if fs.NArg() > 0 {
		return nil, cmdutil.Usagef("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if err := env.Err(); err != nil {
		return nil, err
	}
	for name, p := range map[string]int{"core-port": o.corePort, "webhook-port": o.webhookPort, "proxy-configs-port": o.proxyConfigsPort} {
		if p < 0 || p > 65535 || (p == 0 && name == "proxy-configs-port") {
			return nil, cmdutil.Usagef("--%s: invalid port %d", name, p)
		}
	}
	switch o.webhookCertMode {
	case "auto", "self", "file":
	default:
		return nil, cmdutil.Usagef("--webhook-cert-mode: want self, file or auto, got %q", o.webhookCertMode)
	}
	if err := o.log.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// injectOptions reads Pisanix's environment variables (spec §3.1).
func injectOptions(o *options, log *slog.Logger, m *inject.Metrics) inject.Options {
	port := inject.DefaultAdminPort
	if v := os.Getenv("PISA_PROXY_ADMIN_LISTEN_PORT"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 && n <= 65535 {
			port = n
		} else {
			log.Warn("ignoring invalid PISA_PROXY_ADMIN_LISTEN_PORT", "value", v, "using", port)
		}
	}
	pisanixMetrics := false
	if v := os.Getenv("PISA_PROXY_PISANIX_METRICS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			log.Warn("ignoring invalid PISA_PROXY_PISANIX_METRICS (want true or false); sidecars export only the native metric names", "value", v)
		}
		pisanixMetrics = b
	}
	return inject.Options{
		Image:               envOr("PISA_PROXY_IMAGE", inject.DefaultImage),
		ImagePullPolicy:     corev1.PullPolicy(os.Getenv("PISA_PROXY_IMAGE_PULL_POLICY")),
		ControllerService:   envOr("PISA_CONTROLLER_SERVICE", "default"),
		ControllerNamespace: envOr("PISA_CONTROLLER_NAMESPACE", "default"),
		ControllerHost:      os.Getenv("PISA_CONTROLLER_HOST"),
		AdminHost:           envOr("PISA_PROXY_ADMIN_LISTEN_HOST", inject.DefaultAdminHost),
		AdminPort:           port,
		LogLevel:            envOr("PISA_PROXY_ADMIN_LOG_LEVEL", inject.DefaultLogLevel),
		PisanixMetrics:      pisanixMetrics,
		NativeSidecar:       o.nativeSidecar,
		Logger:              log,
		Metrics:             m,
	}
}

func restConfig(o *options) (*rest.Config, error) {
	if o.kubeconfig != "" {
		c, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", o.kubeconfig, err)
		}
		return c, nil
	}
	c, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config: %w", err)
	}
	return c, nil
}

func main() {
	ctx, stop := cmdutil.SignalContext(context.Background())
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	cmdutil.Exit("pisa-controller", err)
}

// stdin is read by the offline commands' "-f -".
var stdin io.Reader = os.Stdin

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if args[0] == "version" {
			if len(args) > 1 {
				return cmdutil.Usagef("version takes no arguments, got %s", strings.Join(args[1:], " "))
			}
			_, err := fmt.Fprintln(stdout, version.For("Pisa-Controller"))
			return err
		}
		if cmd, ok := offlineCommands[args[0]]; ok {
			return cmd(args[1:], stdin, stdout, stderr)
		}
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.version {
		fmt.Fprintln(stdout, version.For("Pisa-Controller"))
		return nil
	}
	log, _, err := o.log.Logger(stderr, slog.LevelInfo)
	if err != nil {
		return err
	}
	ctrllog.SetLogger(logr.FromSlogHandler(quietShutdown{log.Handler()}))
	log.Info("starting pisa-controller", "version", version.Version, "commit", version.GitCommit,
		"branch", version.GitBranch)

	cfg, err := restConfig(o)
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			return fmt.Errorf("scheme: %w", err)
		}
	}
	ns := envOr("PISA_CONTROLLER_NAMESPACE", "default")
	leNS := o.leaderElectionNamespace
	if leNS == "" {
		leNS = ns
	}
	injected := labels.SelectorFromSet(labels.Set{controller.InjectLabel: controller.InjectLabelValue})
	var wh *webhookSetup
	if o.webhookPort > 0 {
		if wh, err = newWebhook(cfg, scheme, o, ns, log); err != nil {
			return err
		}
	}
	mopts := ctrl.Options{
		Scheme:                        scheme,
		Logger:                        logr.FromSlogHandler(quietShutdown{log.Handler()}),
		Metrics:                       metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:        o.probeAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       leNS,
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// Only the pods of injected applications matter (status.sidecars).
			&corev1.Pod{}: {Label: injected},
		}},
	}
	if wh != nil {
		mopts.WebhookServer = wh.server
	}
	mgr, err := ctrl.NewManager(cfg, mopts)
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}

	store := configserver.NewStore()
	keyWorkers := controller.NewKeyWorkers(mgr.GetAPIReader(), mgr.GetClient(), log.With("component", "key-workers"))
	cs := &configserver.Server{Store: store, Logger: log.With("component", "configserver"), KeyWorkers: keyWorkers}
	metrics := controller.NewMetrics()
	if err := metrics.Register(ctrlmetrics.Registry); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := keyWorkers.Register(ctrlmetrics.Registry); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	for _, kind := range []string{"proxy", "daemon"} {
		if err := ctrlmetrics.Registry.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "pisa_controller_config_watchers",
			Help:        "Long polls of the config API being held, by kind (proxy or daemon).",
			ConstLabels: prometheus.Labels{"kind": kind},
		}, func() float64 {
			p, d := cs.Watchers()
			if kind == "proxy" {
				return float64(p)
			}
			return float64(d)
		})); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}

	isLeader := func() bool {
		select {
		case <-mgr.Elected():
			return true
		default:
			return false
		}
	}
	rec := &controller.Reconciler{
		Client:       mgr.GetClient(),
		SecretReader: mgr.GetAPIReader(),
		Store:        store,
		IsLeader:     isLeader,
		Metrics:      metrics,
		Logger:       log.With("component", "reconciler"),
	}
	if err := rec.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("reconciler: %w", err)
	}

	// The config API: long polls are held up to configserver.MaxWatchTimeout, so no write
	// timeout shorter than that.
	if err := mgr.Add(&httpRunnable{name: "proxy-configs", log: log, srv: &http.Server{
		Addr:              net.JoinHostPort("", strconv.Itoa(o.proxyConfigsPort)),
		Handler:           cs.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      configserver.MaxWatchTimeout + time.Minute,
		IdleTimeout:       2 * time.Minute,
	}}); err != nil {
		return err
	}
	if o.corePort > 0 {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
		mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintln(w, version.Version)
		})
		if err := mgr.Add(&httpRunnable{name: "core", log: log, srv: &http.Server{
			Addr: net.JoinHostPort("", strconv.Itoa(o.corePort)), Handler: mux,
			ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second,
		}}); err != nil {
			return err
		}
	}

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("configs-built", rec.Checker); err != nil {
		return err
	}
	if wh != nil {
		if err := wh.add(mgr); err != nil {
			return err
		}
	}
	log.Info("serving", "proxy_configs_port", o.proxyConfigsPort, "webhook_port", o.webhookPort,
		"core_port", o.corePort, "metrics", o.metricsAddr, "probes", o.probeAddr, "leaderElect", o.leaderElect)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	log.Info("pisa-controller stopped")
	return nil
}

// webhookSetup is the sidecar injection webhook: controller-runtime's webhook server serving
// Pisanix's paths, fed by a certificate source that runs beside it.
type webhookSetup struct {
	server ctrlwebhook.Server
	certs  manager.Runnable          // *webhook.CertManager or *webhook.FileCerts
	ready  func(*http.Request) error // the certificate is loaded
	inject *inject.Metrics
}

// newWebhook builds the webhook before the manager (which takes the server in its options).
func newWebhook(cfg *rest.Config, scheme *runtime.Scheme, o *options, ns string, log *slog.Logger) (*webhookSetup, error) {
	wlog := log.With("component", "webhook")
	mode := o.webhookCertMode
	if mode == "auto" {
		mode = "self"
		if fileExists(o.webhookCertFile) && fileExists(o.webhookKeyFile) {
			mode = "file"
		}
	}
	w := &webhookSetup{inject: inject.NewMetrics()}
	var certs webhook.CertSource
	switch mode {
	case "file":
		fc, err := webhook.NewFileCerts(o.webhookCertFile, o.webhookKeyFile)
		if err != nil {
			return nil, fmt.Errorf("webhook certificate: %w", err)
		}
		certs, w.certs, w.ready = fc, fc, fc.Checker
	default:
		svc := o.webhookService
		if svc == "" {
			svc = envOr("PISA_CONTROLLER_SERVICE", "pisa-controller")
		}
		var ips []net.IP
		for _, s := range strings.Split(o.webhookIPs, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			ip := net.ParseIP(s)
			if ip == nil {
				return nil, cmdutil.Usagef("--webhook-ip-sans: invalid IP %q", s)
			}
			ips = append(ips, ip)
		}
		// Uncached: the Secret and the MutatingWebhookConfiguration are read rarely, and a
		// cache would watch every Secret of the cluster with its data.
		c, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			return nil, fmt.Errorf("webhook client: %w", err)
		}
		cm := &webhook.CertManager{Client: c, Namespace: ns, SecretName: o.webhookCertSecret,
			DNSNames: webhook.ServiceDNSNames(svc, ns), IPAddresses: ips,
			WebhookConfigName: o.webhookConfiguration, Logger: wlog,
			// A helm upgrade may blank the caBundle: look again often (two GETs per check).
			RefreshInterval: 30 * time.Second}
		certs, w.certs, w.ready = cm, cm, cm.Checker
	}
	srv, err := webhook.NewServer(webhook.Options{Port: o.webhookPort, Certs: certs,
		Inject: injectOptions(o, wlog, w.inject), Logger: wlog})
	if err != nil {
		return nil, err
	}
	w.server = srv
	wlog.Info("sidecar injection webhook", "certMode", mode, "port", o.webhookPort)
	return w, nil
}

// add runs the certificate source and the server (mgr.GetWebhookServer adds the server given
// in the manager's options) and registers the readiness check and the injection metrics.
func (w *webhookSetup) add(mgr manager.Manager) error {
	if err := mgr.Add(w.certs); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook-cert", w.ready); err != nil {
		return err
	}
	if mgr.GetWebhookServer() != w.server {
		return errors.New("webhook: the manager does not run the webhook server given to it")
	}
	if err := ctrlmetrics.Registry.Register(w.inject); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// httpRunnable runs an http.Server as a manager Runnable on every replica.
type httpRunnable struct {
	name string
	srv  *http.Server
	log  *slog.Logger
}

func (h *httpRunnable) NeedLeaderElection() bool { return false }

func (h *httpRunnable) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", h.srv.Addr)
	if err != nil {
		return fmt.Errorf("%s server: %w", h.name, err)
	}
	h.log.Info("listening", "server", h.name, "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- h.srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s server: %w", h.name, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Held long polls end here; their sidecars reconnect to another replica.
	if err := h.srv.Shutdown(sctx); err != nil {
		_ = h.srv.Close()
	}
	return nil
}

// quietShutdown passes controller-runtime's logs through, except that the "leader election
// lost" error it logs when a leader stops on purpose (SIGTERM, with the lease released) is
// reported at info level: every rolling update would otherwise log an error.
type quietShutdown struct{ slog.Handler }

func (h quietShutdown) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && r.Message == "error received after stop sequence was engaged" {
		lost := false
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" && strings.Contains(a.Value.String(), "leader election lost") {
				lost = true
			}
			return !lost
		})
		if lost {
			q := slog.NewRecord(r.Time, slog.LevelInfo, "leader election ended with the shutdown", r.PC)
			if !h.Handler.Enabled(ctx, slog.LevelInfo) {
				return nil
			}
			return h.Handler.Handle(ctx, q)
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietShutdown) WithAttrs(as []slog.Attr) slog.Handler {
	return quietShutdown{h.Handler.WithAttrs(as)}
}

func (h quietShutdown) WithGroup(name string) slog.Handler {
	return quietShutdown{h.Handler.WithGroup(name)}
}
