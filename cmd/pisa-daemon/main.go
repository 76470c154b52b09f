// Command pisa-daemon is the Database Mesh node agent: per-service egress
// bandwidth QoS (QoSClaim) with HTB classes and an eBPF classifier.
//
//	pisa-daemon                          config from the controller (DaemonSet)
//	pisa-daemon --config daemon.toml     standalone, configured from a file
//
// See docs/daemon.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/database-mesh/pisanix-go/internal/admin"
	"github.com/database-mesh/pisanix-go/internal/cmdutil"
	"github.com/database-mesh/pisanix-go/internal/daemon"
	"github.com/database-mesh/pisanix-go/internal/daemon/dataplane"
	"github.com/database-mesh/pisanix-go/internal/daemon/handover"
	"github.com/database-mesh/pisanix-go/internal/daemonconfig"
	"github.com/database-mesh/pisanix-go/internal/version"
)

func main() {
	ctx, stop := cmdutil.SignalContext(context.Background())
	err := newRootCmd(nil).ExecuteContext(ctx)
	stop()
	cmdutil.Exit("pisa-daemon", err)
}

// options are the command line, after flags and environment.
type options struct {
	egressDevice        string
	bridgeDevice        string
	controllerService   string
	controllerNamespace string
	controllerHost      string
	nodeName            string
	configPath          string
	adminAddr           string
	cleanupOnExit       cleanupMode
	// The daemon's own pod (downward API), for --cleanup-on-exit=auto.
	podName, podNamespace string
	log                   cmdutil.Log
	bpffs                 string
	attach                string
	resync                time.Duration

	// Set when the device came from a flag or the environment; otherwise
	// a standalone file's [global] may set it.
	egressExplicit, bridgeExplicit bool
}

// dataplaneCloser is what run needs of a dataplane beyond reconciling.
type dataplaneCloser interface {
	daemon.Dataplane
	Cleanup() error
	Close() error
}

// openDataplane is replaced in tests.
type openFunc func(devices []string, o *options, log *slog.Logger) (dataplaneCloser, error)

func openKernelDataplane(devices []string, o *options, log *slog.Logger) (dataplaneCloser, error) {
	return dataplane.Open(dataplane.Options{
		Devices: devices,
		BPFFS:   o.bpffs,
		Attach:  dataplane.AttachMode(o.attach),
		Logger:  log,
	})
}

func newRootCmd(open openFunc) *cobra.Command {
	if open == nil {
		open = openKernelDataplane
	}
	o := &options{}
	env := &cmdutil.Env{}
	cmd := &cobra.Command{
		Use:   "pisa-daemon",
		Short: "pisa-daemon: per-service database traffic QoS on a node (HTB + eBPF)",
		Long: `pisa-daemon limits the egress bandwidth of database traffic per VirtualDatabase
service (QoSClaim): one HTB class per service on the egress (and bridge) device,
and an eBPF classifier that sends traffic to the service's endpoints into it.

Without --config it reads and watches its configuration from pisa-controller:
  GET http://<host>/apis/configs.database-mesh.io/v1alpha1/daemonconfigs?node=<node>`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := env.Err(); err != nil {
				return err
			}
			if err := o.log.Validate(); err != nil {
				return err
			}
			fs := cmd.Flags()
			o.egressExplicit = fs.Changed("global-egress-device") || env.Set("PISA_DAEMON_GLOBAL_EGRESS_DEVICE")
			o.bridgeExplicit = fs.Changed("global-bridge-device") || env.Set("PISA_DAEMON_GLOBAL_BRIDGE_DEVICE")
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			return run(ctx, o, open)
		},
	}
	addFlags(cmd.Flags(), o, env)
	cmdutil.Setup(cmd, "Pisa-Daemon")
	return cmd
}

func addFlags(fs *pflag.FlagSet, o *options, env *cmdutil.Env) {
	fs.StringVar(&o.egressDevice, "global-egress-device", env.String("PISA_DAEMON_GLOBAL_EGRESS_DEVICE", "eth0"),
		"egress device to shape (env PISA_DAEMON_GLOBAL_EGRESS_DEVICE)")
	fs.StringVar(&o.bridgeDevice, "global-bridge-device", env.String("PISA_DAEMON_GLOBAL_BRIDGE_DEVICE", ""),
		"bridge device to shape as well, e.g. cni0; empty: none (env PISA_DAEMON_GLOBAL_BRIDGE_DEVICE)")
	fs.StringVar(&o.controllerService, "pisa-controller-service", env.String("PISA_CONTROLLER_SERVICE", "pisa-controller"),
		"controller service name (env PISA_CONTROLLER_SERVICE)")
	fs.StringVar(&o.controllerNamespace, "pisa-controller-namespace", env.String("PISA_CONTROLLER_NAMESPACE", "pisa-system"),
		"controller namespace (env PISA_CONTROLLER_NAMESPACE)")
	fs.StringVar(&o.controllerHost, "pisa-controller-host", env.String("PISA_CONTROLLER_HOST", ""),
		"controller host:port; empty: <service>.<namespace>:8080 (env PISA_CONTROLLER_HOST)")
	fs.StringVar(&o.nodeName, "node-name", env.String("NODE_NAME", ""), "this node's name, sent to the controller (env NODE_NAME)")
	fs.StringVarP(&o.configPath, "config", "c", env.String("PISA_DAEMON_CONFIG", ""),
		"standalone TOML configuration file; when set the controller is not used (env PISA_DAEMON_CONFIG)")
	fs.StringVar(&o.adminAddr, "admin-addr", env.String("PISA_DAEMON_ADMIN_ADDR", ":5592"),
		"admin HTTP address: /healthz /readyz /version /metrics /config (env PISA_DAEMON_ADMIN_ADDR)")
	o.cleanupOnExit = cleanupAuto
	env.Value("PISA_DAEMON_CLEANUP_ON_EXIT", &o.cleanupOnExit)
	fs.Var(&o.cleanupOnExit, "cleanup-on-exit",
		"on exit: true removes all classes, classifiers and pinned objects; false keeps them pinned for the next start to adopt; "+
			"auto keeps them when the pod's DaemonSet still exists (a rolling update), else removes them (env PISA_DAEMON_CLEANUP_ON_EXIT)")
	fs.Lookup("cleanup-on-exit").NoOptDefVal = "true" // --cleanup-on-exit alone, as when it was a bool flag
	o.podName = env.String("POD_NAME", "")
	o.podNamespace = env.String("POD_NAMESPACE", "")
	o.log.AddFlags(fs, env, cmdutil.LogFlags{LevelEnv: "PISA_DAEMON_LOG_LEVEL", FormatEnv: "PISA_DAEMON_LOG_FORMAT",
		DefaultLevel: "info", LevelShorthand: "l"})
	fs.StringVar(&o.bpffs, "bpffs", env.String("PISA_DAEMON_BPFFS", "/sys/fs/bpf"),
		"BPF file system (mounted if needed); objects are pinned under <bpffs>/pisa-daemon (env PISA_DAEMON_BPFFS)")
	fs.StringVar(&o.attach, "attach", env.String("PISA_DAEMON_ATTACH", "auto"),
		"classifier attachment: auto (TCX if the kernel has it, else tc), tcx or tc (env PISA_DAEMON_ATTACH)")
	fs.DurationVar(&o.resync, "resync-interval", env.Duration("PISA_DAEMON_RESYNC_INTERVAL", 30*time.Second),
		"reconcile again this often: re-resolve host names, repair drift (env PISA_DAEMON_RESYNC_INTERVAL)")
}

// cleanupMode is --cleanup-on-exit: true, false or auto.
type cleanupMode string

const (
	cleanupAlways cleanupMode = "true"
	cleanupNever  cleanupMode = "false"
	cleanupAuto   cleanupMode = "auto"
)

func (m *cleanupMode) String() string { return string(*m) }
func (m *cleanupMode) Type() string   { return "mode" }

// Set accepts auto and the booleans strconv.ParseBool reads (1, t, true, 0, f, false in any
// case), as the flag did when it was a bool.
func (m *cleanupMode) Set(s string) error {
	if strings.EqualFold(strings.TrimSpace(s), "auto") {
		*m = cleanupAuto
		return nil
	}
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return errors.New("want true, false or auto")
	}
	*m = cleanupNever
	if b {
		*m = cleanupAlways
	}
	return nil
}

// handoverTimeout bounds the API calls of --cleanup-on-exit=auto, so that stopping stays quick.
const handoverTimeout = 3 * time.Second

// checkSuccessor asks the Kubernetes API whether a new daemon will take over (tests replace it).
var checkSuccessor = func(ctx context.Context, namespace, pod string) (handover.Result, error) {
	c, err := handover.InCluster(handoverTimeout, "pisa-daemon/"+version.Version)
	if err != nil {
		return handover.Result{}, err
	}
	return handover.Check(ctx, c, namespace, pod)
}

// checkOwner is the start-time half of checkSuccessor: the DaemonSet that owns the pod, read
// once so that a missing permission or downward API variable shows in the log at start rather
// than only at exit (tests replace it).
var checkOwner = func(ctx context.Context, namespace, pod string) (string, error) {
	c, err := handover.InCluster(handoverTimeout, "pisa-daemon/"+version.Version)
	if err != nil {
		return "", err
	}
	name, _, err := handover.Owner(ctx, c, namespace, pod)
	if err != nil {
		return "", err
	}
	return namespace + "/" + name, nil
}

// keepOnExit decides whether the state stays pinned for a next daemon (--cleanup-on-exit=false,
// or auto with a successor coming) or is removed; it logs why.
func (o *options) keepOnExit(logger *slog.Logger) bool {
	switch o.cleanupOnExit {
	case cleanupNever:
		logger.Info("leaving classes and classifier in place for the next start (--cleanup-on-exit=false)")
		return true
	case cleanupAlways:
		return false
	}
	if o.configPath != "" {
		logger.Warn("--cleanup-on-exit=auto: standalone (--config), no DaemonSet to hand over to: removing classes")
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), handoverTimeout)
	defer cancel()
	t0 := time.Now()
	res, err := checkSuccessor(ctx, o.podNamespace, o.podName)
	took := time.Since(t0).Round(time.Millisecond)
	if err != nil {
		args := []any{"err", err, "took", took}
		if handover.AccessDenied(err) {
			args = append(args, "hint", "helm uninstall and kubectl delete remove the daemon's Role and ServiceAccount "+
				"with its DaemonSet; then removing the classes is right")
		}
		logger.Warn("--cleanup-on-exit=auto: cannot tell whether a new daemon takes over: removing classes", args...)
		return false
	}
	logger.Info("--cleanup-on-exit=auto: "+res.Reason, "daemonset", res.DaemonSet, "took", took)
	return res.Keep
}

// controllerHost is the controller's address: the host flag, else
// <service>.<namespace>:8080 as in Pisanix.
func (o *options) controllerAddr() string {
	if o.controllerHost != "" {
		return o.controllerHost
	}
	return o.controllerService + "." + o.controllerNamespace + ":8080"
}

// devices returns the devices to shape: flags and environment first, then a
// standalone file's [global], then the defaults.
func (o *options) devices(file *daemonconfig.Config) []string {
	egress, bridge := o.egressDevice, o.bridgeDevice
	if file != nil && file.Global != nil {
		if !o.egressExplicit && file.Global.EgressDevice != "" {
			egress = file.Global.EgressDevice
		}
		if !o.bridgeExplicit && file.Global.BridgeDevice != "" {
			bridge = file.Global.BridgeDevice
		}
	}
	var out []string
	for _, d := range []string{egress, bridge} {
		if d = strings.TrimSpace(d); d != "" && !containsStr(out, d) {
			out = append(out, d)
		}
	}
	return out
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func run(ctx context.Context, o *options, open openFunc) error {
	logger, _, err := o.log.Logger(os.Stderr, slog.LevelInfo)
	if err != nil {
		return err
	}

	var fileCfg *daemonconfig.Config
	if o.configPath != "" {
		if fileCfg, err = daemonconfig.LoadFile(o.configPath); err != nil {
			return err
		}
	}
	devices := o.devices(fileCfg)
	if len(devices) == 0 {
		return errors.New("no device to shape: set --global-egress-device")
	}
	logger.Info("starting pisa-daemon", "version", version.Version, "commit", version.GitCommit,
		"devices", devices, "standalone", o.configPath != "", "cleanup_on_exit", string(o.cleanupOnExit))
	if o.cleanupOnExit == cleanupAuto && o.configPath == "" {
		checkOwner := checkOwner
		go func() {
			ctx, cancel := context.WithTimeout(ctx, handoverTimeout)
			defer cancel()
			if ds, err := checkOwner(ctx, o.podNamespace, o.podName); err != nil {
				logger.Warn("--cleanup-on-exit=auto: cannot read this pod's DaemonSet; on exit the classes will be removed "+
					"unless the API answers then", "err", err)
			} else {
				logger.Info("--cleanup-on-exit=auto: on exit, classes stay for the next daemon while this DaemonSet exists",
					"daemonset", ds)
			}
		}()
	}

	dp, err := open(devices, o, logger)
	if err != nil {
		return fmt.Errorf("dataplane: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := daemon.NewMetrics(reg, dp.Stats, logger)
	rec := daemon.NewReconciler(dp, daemon.ReconcilerOptions{Logger: logger, Metrics: m})

	adm := admin.New(admin.Options{
		Addr:     o.adminAddr,
		Gatherer: reg,
		Ready:    rec.Ready,
		Logger:   logger,
		Config:   func() any { return rec.Status() },
		Version:  version.For("Pisa-Daemon"),
	})
	if err := adm.Start(); err != nil {
		_ = dp.Close()
		return fmt.Errorf("admin server: %w", err)
	}

	var src daemon.Source
	if o.configPath != "" {
		hup, stopHup := cmdutil.Hangups()
		defer stopHup()
		src = &daemon.FileSource{Path: o.configPath, Initial: fileCfg, Reload: hup, Logger: logger,
			OnError: func(error) { m.FetchError() }}
	} else {
		if o.nodeName == "" {
			logger.Warn("no --node-name (NODE_NAME): the controller is asked for all daemon configs")
		}
		url := daemon.ControllerURL(o.controllerAddr())
		logger.Info("watching the controller", "url", url, "node", o.nodeName)
		src = &daemon.HTTPSource{URL: url, Node: o.nodeName, Logger: logger,
			OnError: func(error) { m.FetchError() }}
	}

	runErr := daemon.Run(ctx, src, rec, o.resync)
	if errors.Is(runErr, context.Canceled) && ctx.Err() != nil {
		runErr = nil
		logger.Info("shutting down")
	}

	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if runErr != nil {
		errs = append(errs, runErr)
	}
	if o.keepOnExit(logger) {
		if err := dp.Close(); err != nil {
			errs = append(errs, err)
		}
	} else if err := dp.Cleanup(); err != nil {
		errs = append(errs, fmt.Errorf("cleanup: %w", err))
	}
	if err := adm.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		errs = append(errs, err)
	}
	logger.Info("stopped")
	return errors.Join(errs...)
}
