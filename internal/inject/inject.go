// Package inject adds the pisa-proxy sidecar to pods: Inject is a pure function from a pod to a
// JSON patch (the Pisanix patch of spec §3.3, plus a readiness probe and POD_NAME), and Handler
// wraps it as a Kubernetes mutating admission webhook (AdmissionReview v1).
//
// Injection is idempotent: a pod that already has a container (or init container) named
// pisa-proxy gets no patch and is admitted unchanged (Pisanix answered HTTP 500, so with the
// default failurePolicy the pod was rejected).
package inject

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Names and defaults of the injected container.
const (
	ContainerName = "pisa-proxy"
	AdminPortName = "pisa-admin"

	DefaultImage               = "pisanixio/proxy:latest"
	DefaultControllerService   = "pisa-controller"
	DefaultControllerNamespace = "pisa-system"
	DefaultAdminHost           = "0.0.0.0"
	DefaultAdminPort           = 5591
	DefaultLogLevel            = "INFO"

	// DeployedNameAnnotation on a pod (template) names its VirtualDatabase explicitly,
	// overriding the derivation from the owner references. Beyond Pisanix.
	DeployedNameAnnotation = "pisanix.io/deployed-name"
)

// Options configure the injected sidecar. Zero values take the defaults above (Pisanix's
// environment variables PISA_PROXY_IMAGE, PISA_CONTROLLER_SERVICE, PISA_CONTROLLER_NAMESPACE,
// PISA_PROXY_ADMIN_LISTEN_HOST, PISA_PROXY_ADMIN_LISTEN_PORT, PISA_PROXY_ADMIN_LOG_LEVEL).
type Options struct {
	Image           string
	ImagePullPolicy corev1.PullPolicy
	// ControllerService and ControllerNamespace locate the config server
	// (<service>.<namespace>:8080); ControllerHost, when set, overrides them
	// (PISA_CONTROLLER_HOST: host:port or URL).
	ControllerService   string
	ControllerNamespace string
	ControllerHost      string
	AdminHost           string
	AdminPort           int
	LogLevel            string
	// PisanixMetrics makes the sidecar also export Pisanix's metric names
	// (PISA_PROXY_PISANIX_METRICS=true; pisa-proxy --pisanix-metrics).
	PisanixMetrics bool
	// NativeSidecar injects the proxy as a Kubernetes native sidecar (an init container with
	// restartPolicy Always, first of the init containers: Kubernetes ≥ 1.29): it starts before
	// the init containers and application containers and stops after them. Its startup probe
	// (/readyz: configured, a backend reachable) holds them until the proxy can serve.
	NativeSidecar bool
	// Resources of the sidecar (Pisanix: none).
	Resources corev1.ResourceRequirements
	// Logger is used by Handler (default slog.Default()).
	Logger *slog.Logger
	// Metrics, when set, counts Handler's requests by result (see NewMetrics).
	Metrics *Metrics
}

func (o Options) withDefaults() Options {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.Image, DefaultImage)
	def(&o.ControllerService, DefaultControllerService)
	def(&o.ControllerNamespace, DefaultControllerNamespace)
	def(&o.AdminHost, DefaultAdminHost)
	def(&o.LogLevel, DefaultLogLevel)
	if o.AdminPort <= 0 || o.AdminPort > 65535 {
		o.AdminPort = DefaultAdminPort
	}
	return o
}

// PatchOp is one JSON patch (RFC 6902) operation.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Injected reports whether pod already has the sidecar.
func Injected(pod *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range cs {
			if cs[i].Name == ContainerName {
				return true
			}
		}
	}
	return false
}

// trimSegments splits s on "-" and drops the last n elements.
func trimSegments(s string, n int) string {
	parts := strings.Split(s, "-")
	if len(parts) <= n {
		return ""
	}
	return strings.Join(parts[:len(parts)-n], "-")
}

// allDigits reports whether s is a non-empty decimal number.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// DeployedName returns the application name of a pod, which is the name of its VirtualDatabase
// (PISA_DEPLOYED_NAME), as Pisanix derived it (spec §3.3), with its quirks fixed:
//
//   - the annotation pisanix.io/deployed-name, when set, wins;
//   - no owner reference, or an owner without kind: the pod's name (for a pod created with
//     generateName only, whose name is not known yet at admission: generateName without its
//     trailing "-");
//   - ReplicaSet: generateName minus its last 2 "-" segments ("shop-6668ddbf55-" → "shop",
//     the Deployment); without generateName, the ReplicaSet's name minus its hash;
//   - StatefulSet, DaemonSet: generateName minus its last segment ("shop-" → "shop"); a
//     StatefulSet's pods have no generateName (they are named <set>-<ordinal>), so the owner's
//     name is used — Pisanix derived "" for them;
//   - Job: Pisanix dropped 2 segments, which turned "myjob-" into "myjob-" unchanged (a name no
//     VirtualDatabase can have) but turned a CronJob's Job "backup-28934211-" into "backup".
//     Here: the Job's name ("myjob"), unless it ends in "-<8 or more digits>", the suffix the
//     CronJob controller appends (scheduled time in minutes), which is dropped to give the
//     CronJob's name. Annotate the pod template to override either guess.
//   - any other owner kind (Pisanix: ""): the owner's name.
func DeployedName(pod *corev1.Pod) string {
	if v := strings.TrimSpace(pod.Annotations[DeployedNameAnnotation]); v != "" {
		return v
	}
	gen := pod.GenerateName
	if len(pod.OwnerReferences) == 0 || pod.OwnerReferences[0].Kind == "" {
		if pod.Name != "" {
			return pod.Name
		}
		return strings.TrimSuffix(gen, "-")
	}
	owner := pod.OwnerReferences[0]
	switch owner.Kind {
	case "ReplicaSet":
		if n := trimSegments(gen, 2); n != "" {
			return n
		}
		if n := trimSegments(owner.Name, 1); n != "" {
			return n
		}
		return owner.Name
	case "StatefulSet", "DaemonSet":
		if n := trimSegments(gen, 1); n != "" {
			return n
		}
		return owner.Name
	case "Job":
		job := owner.Name
		if job == "" {
			job = strings.TrimSuffix(gen, "-")
		}
		if i := strings.LastIndexByte(job, '-'); i > 0 && len(job)-i-1 >= 8 && allDigits(job[i+1:]) {
			return job[:i]
		}
		return job
	default:
		return owner.Name
	}
}

// Container returns the sidecar container for an application named deployedName.
func Container(deployedName string, opts Options) corev1.Container {
	o := opts.withDefaults()
	port := strconv.Itoa(o.AdminPort)
	env := []corev1.EnvVar{
		{Name: "PISA_CONTROLLER_SERVICE", Value: o.ControllerService},
		{Name: "PISA_CONTROLLER_NAMESPACE", Value: o.ControllerNamespace},
		{Name: "PISA_DEPLOYED_NAMESPACE", ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}},
		{Name: "PISA_DEPLOYED_NAME", Value: deployedName},
		{Name: "PISA_PROXY_ADMIN_LISTEN_HOST", Value: o.AdminHost},
		{Name: "PISA_PROXY_ADMIN_LISTEN_PORT", Value: port},
		{Name: "PISA_PROXY_ADMIN_LOG_LEVEL", Value: o.LogLevel},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}},
		{Name: "POD_UID", ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.uid"}}},
	}
	if o.ControllerHost != "" {
		env = append(env, corev1.EnvVar{Name: "PISA_CONTROLLER_HOST", Value: o.ControllerHost})
	}
	if o.PisanixMetrics {
		env = append(env, corev1.EnvVar{Name: "PISA_PROXY_PISANIX_METRICS", Value: "true"})
	}
	c := corev1.Container{
		Name:  ContainerName,
		Image: o.Image,
		Args:  []string{"sidecar"},
		Ports: []corev1.ContainerPort{{Name: AdminPortName, ContainerPort: int32(o.AdminPort), Protocol: corev1.ProtocolTCP}},
		Env:   env,
		ReadinessProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/readyz", Port: intstr.FromInt32(int32(o.AdminPort)), Scheme: corev1.URISchemeHTTP}},
			PeriodSeconds:    5,
			FailureThreshold: 3,
		},
		Resources:       o.Resources,
		ImagePullPolicy: o.ImagePullPolicy,
		// The XA decision log of cross-shard transactions (docs/sharding.md)
		// must outlive a restart of the sidecar's container.
		VolumeMounts: []corev1.VolumeMount{{Name: StateVolumeName, MountPath: StateDir}},
	}
	if o.NativeSidecar {
		always := corev1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
		// The kubelet starts the next container only once a native sidecar's startup probe
		// passes: the application's first statement then finds the proxy configured and its
		// backends reachable, instead of a refused connection. Up to 5 minutes (a database that
		// is down holds the pod's start, then the sidecar restarts).
		c.StartupProbe = &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/readyz", Port: intstr.FromInt32(int32(o.AdminPort)), Scheme: corev1.URISchemeHTTP}},
			PeriodSeconds:    1,
			FailureThreshold: 300,
		}
	}
	return c
}

// StateVolumeName is the sidecar's emptyDir volume, mounted at StateDir:
// it holds the XA decision log (proxyconfig.DefaultXALogDir), which must
// survive a restart of the container (an emptyDir lives as long as the pod).
const (
	StateVolumeName = "pisa-proxy-state"
	StateDir        = "/var/lib/pisa-proxy"
)

// ErrNoDeployedName is returned when a pod's application name cannot be derived.
var ErrNoDeployedName = errors.New("cannot derive the application (VirtualDatabase) name of the pod: " +
	"it has no name, generateName or usable owner; set the annotation " + DeployedNameAnnotation)

// Inject returns the JSON patch that adds the sidecar to pod, or changed=false and no patch when
// the pod already has it. The patch works whether or not spec.containers / spec.initContainers
// are present.
func Inject(pod *corev1.Pod, opts Options) (patch []byte, changed bool, err error) {
	if pod == nil {
		return nil, false, errors.New("no pod")
	}
	if Injected(pod) {
		return nil, false, nil
	}
	name := DeployedName(pod)
	if name == "" {
		return nil, false, ErrNoDeployedName
	}
	c := Container(name, opts)
	var op PatchOp
	switch {
	case opts.NativeSidecar && len(pod.Spec.InitContainers) == 0:
		op = PatchOp{Op: "add", Path: "/spec/initContainers", Value: []corev1.Container{c}}
	case opts.NativeSidecar:
		// First, so that init containers can already use the database.
		op = PatchOp{Op: "add", Path: "/spec/initContainers/0", Value: c}
	case len(pod.Spec.Containers) == 0:
		op = PatchOp{Op: "add", Path: "/spec/containers", Value: []corev1.Container{c}}
	default:
		op = PatchOp{Op: "add", Path: "/spec/containers/-", Value: c}
	}
	vol := corev1.Volume{Name: StateVolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	vop := PatchOp{Op: "add", Path: "/spec/volumes/-", Value: vol}
	if len(pod.Spec.Volumes) == 0 {
		vop = PatchOp{Op: "add", Path: "/spec/volumes", Value: []corev1.Volume{vol}}
	}
	patch, err = json.Marshal([]PatchOp{op, vop})
	if err != nil {
		return nil, false, fmt.Errorf("marshal patch: %w", err)
	}
	return patch, true, nil
}
