package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TrafficStrategySpec says which DatabaseEndpoints serve a VirtualDatabase service and how
// statements are routed and governed.
type TrafficStrategySpec struct {
	// Selector selects the DatabaseEndpoints of the same namespace by label (matchLabels and
	// matchExpressions). Pisanix ignored it and used every DatabaseEndpoint of the namespace.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// LoadBalance chooses endpoints: a simple balancer, or read/write splitting (which wins when
	// both are set).
	// +optional
	LoadBalance *LoadBalance `json:"loadBalance,omitempty"`

	// CircuitBreaks reject matching statements.
	// +optional
	CircuitBreaks []CircuitBreak `json:"circuitBreaks,omitempty"`

	// ConcurrencyControls bound how many matching statements run at once.
	// +optional
	ConcurrencyControls []ConcurrencyControl `json:"concurrencyControls,omitempty"`

	// AccessControl restricts what listed users may do. Beyond Pisanix.
	// +optional
	AccessControl *AccessControl `json:"accessControl,omitempty"`

	// Audit writes an audit log of statements. Beyond Pisanix.
	// +optional
	Audit *Audit `json:"audit,omitempty"`

	// EndpointBreaker stops sending traffic to a failing endpoint for a while. Beyond Pisanix.
	// +optional
	EndpointBreaker *EndpointBreaker `json:"endpointBreaker,omitempty"`

	// Failover makes statements wait through a backend restart or a primary switchover and
	// replays interrupted transactions (the listener's [proxy.config.failover]). Beyond Pisanix.
	// +optional
	Failover *Failover `json:"failover,omitempty"`
}

// Failover is what the sidecar does while a backend restarts or the primary is switched over
// (docs/proxy.md, "Surviving a backend restart"). Off unless delayedRetry or transactionReplay
// is set.
// +kubebuilder:validation:XValidation:rule="has(self.delayedRetry) && self.delayedRetry || has(self.transactionReplay) && self.transactionReplay",message="failover sets neither delayedRetry nor transactionReplay"
type Failover struct {
	// DelayedRetry: a statement outside a transaction that finds no reachable backend waits
	// for one instead of failing with ERR 2002.
	// +optional
	DelayedRetry bool `json:"delayedRetry,omitempty"`

	// DelayedRetryTimeout bounds one statement's wait (Go duration; default 10s, at most 10m).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	// +optional
	DelayedRetryTimeout *metav1.Duration `json:"delayedRetryTimeout,omitempty"`

	// DelayedRetryMaxWaiting bounds the statements waiting at once (default 1000).
	// +kubebuilder:validation:Minimum=0
	// +optional
	DelayedRetryMaxWaiting int32 `json:"delayedRetryMaxWaiting,omitempty"`

	// TransactionReplay replays a transaction whose backend connection died on a new
	// connection when every result its client was sent comes out the same; otherwise the
	// client gets ERR 2013 and its connection is closed.
	// +optional
	TransactionReplay bool `json:"transactionReplay,omitempty"`

	// TransactionReplayMaxSize bounds the statement text kept per transaction for a replay
	// (bytes; default 1048576).
	// +kubebuilder:validation:Minimum=0
	// +optional
	TransactionReplayMaxSize int32 `json:"transactionReplayMaxSize,omitempty"`
}

// LoadBalance chooses the endpoint of each statement.
type LoadBalance struct {
	// SimpleLoadBalance spreads statements over all selected endpoints.
	// +optional
	SimpleLoadBalance *SimpleLoadBalance `json:"simpleLoadBalance,omitempty"`

	// ReadWriteSplitting sends reads to replicas and the rest to the primary.
	// +optional
	ReadWriteSplitting *ReadWriteSplitting `json:"readWriteSplitting,omitempty"`
}

// SimpleLoadBalance is a balancer over all selected endpoints.
type SimpleLoadBalance struct {
	// Kind is the balancing algorithm.
	Kind LoadBalanceAlgorithm `json:"kind"`
}

// ReadWriteSplitting routes by rules, with a static (annotation) or dynamic (discovered) view of
// which endpoint is the primary. When both are set, dynamic is used.
type ReadWriteSplitting struct {
	// Static takes the roles from the database-mesh.io/role annotation of the DatabaseEndpoints.
	// +optional
	Static *ReadWriteSplittingStatic `json:"static,omitempty"`

	// Dynamic discovers the primary and healthy replicas by probing the endpoints.
	// +optional
	Dynamic *ReadWriteSplittingDynamic `json:"dynamic,omitempty"`
}

// ReadWriteSplittingStatic is read/write splitting with fixed roles.
type ReadWriteSplittingStatic struct {
	// DefaultTarget receives statements no rule matches.
	// +optional
	DefaultTarget ReadWriteSplittingTarget `json:"defaultTarget,omitempty"`

	// Rules are tried in order; the first match decides the target.
	// +optional
	Rules []ReadWriteSplittingRule `json:"rules,omitempty"`
}

// ReadWriteSplittingDynamic is read/write splitting with roles discovered at run time.
type ReadWriteSplittingDynamic struct {
	// DefaultTarget receives statements no rule matches.
	// +optional
	DefaultTarget ReadWriteSplittingTarget `json:"defaultTarget,omitempty"`

	// Rules are tried in order; the first match decides the target.
	// +optional
	Rules []ReadWriteSplittingRule `json:"rules,omitempty"`

	// Discovery is how roles and health are found.
	Discovery ReadWriteDiscovery `json:"discovery"`
}

// ReadWriteSplittingRule is one routing rule.
type ReadWriteSplittingRule struct {
	// Name of the rule (metrics, logs).
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// Type: "regex" matches the statement text; "generic" routes reads to replicas.
	Type RuleType `json:"type"`

	// Regex are the patterns of a regex rule (any one matching is a match; Go RE2 syntax).
	// +optional
	Regex []string `json:"regex,omitempty"`

	// Target of a regex rule.
	// +optional
	Target ReadWriteSplittingTarget `json:"target,omitempty"`

	// AlgorithmName balances among the target's endpoints.
	AlgorithmName LoadBalanceAlgorithm `json:"algorithmName"`
}

// ReadWriteDiscovery is the discovery method of dynamic read/write splitting.
type ReadWriteDiscovery struct {
	// MasterHighAvailability probes MySQL replication ("mha").
	// +optional
	MasterHighAvailability *MasterHighAvailability `json:"masterHighAvailability,omitempty"`
}

// MasterHighAvailability finds the primary and healthy replicas by probing every endpoint.
// Periods and timeouts are milliseconds; 0 means the proxy default. A missing probe uses the
// proxy defaults (Pisanix's controller crashed on a missing probe).
// +kubebuilder:validation:XValidation:rule="has(self.password) != has(self.passwordSecretRef)",message="exactly one of password and passwordSecretRef must be set"
type MasterHighAvailability struct {
	// User the probes log in with.
	User string `json:"user"`

	// Password of the probe user, in plain text.
	// +optional
	Password string `json:"password,omitempty"`

	// PasswordSecretRef takes the probe password from a Secret. Beyond Pisanix.
	// +optional
	PasswordSecretRef *SecretKeySelector `json:"passwordSecretRef,omitempty"`

	// MonitorInterval is how often (ms) the roles are re-evaluated; 0 or absent means the proxy
	// default (1000), or monitorPeriod when that is set.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MonitorInterval int64 `json:"monitorInterval,omitempty"`

	// MonitorPeriod is the deprecated spelling of monitorInterval: Pisanix v0.2.0–v0.3.2 charts
	// and docs used it in the schema while Pisanix's controller read monitorInterval (the value
	// was lost). pisa-controller reads it when monitorInterval is not set, and the
	// TrafficStrategy's "Deprecated" condition says to rename it. Objects stored under
	// Pisanix's schema keep it after an upgrade.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MonitorPeriod *int64 `json:"monitorPeriod,omitempty"`

	// ConnectionProbe checks that a connection can be opened.
	// +optional
	ConnectionProbe *Probe `json:"connectionProbe,omitempty"`

	// PingProbe checks that the server answers a ping.
	// +optional
	PingProbe *Probe `json:"pingProbe,omitempty"`

	// ReplicationLagProbe checks replica lag.
	// +optional
	ReplicationLagProbe *ReplicationLagProbe `json:"replicationLagProbe,omitempty"`

	// ReadOnlyProbe tells the primary (read_only off) from the replicas.
	// +optional
	ReadOnlyProbe *Probe `json:"readOnlyProbe,omitempty"`
}

// Probe is a periodic health check.
type Probe struct {
	// PeriodMilliseconds between checks.
	// +kubebuilder:validation:Minimum=0
	PeriodMilliseconds int64 `json:"periodMilliseconds"`

	// TimeoutMilliseconds of one check.
	// +kubebuilder:validation:Minimum=0
	TimeoutMilliseconds int64 `json:"timeoutMilliseconds"`

	// FailureThreshold is how many failed checks in a row mark the endpoint down.
	// +kubebuilder:validation:Minimum=0
	FailureThreshold int64 `json:"failureThreshold"`

	// SuccessThreshold is optional and, as in Pisanix (whose schema required it but which never
	// read it), an endpoint counts as up again after one successful check. A value above 1 is
	// therefore not honoured: the TrafficStrategy's "Deprecated" condition says so.
	// +kubebuilder:validation:Minimum=0
	// +optional
	SuccessThreshold int64 `json:"successThreshold,omitempty"`
}

// ReplicationLagProbe is a Probe with the largest acceptable lag.
type ReplicationLagProbe struct {
	Probe `json:",inline"`

	// MaxReplicationLag above which a replica is taken out of the read set.
	// +kubebuilder:validation:Minimum=0
	MaxReplicationLag int64 `json:"maxReplicationLag"`
}

// CircuitBreak rejects the statements it matches (MySQL error 1047).
type CircuitBreak struct {
	// Regex: a statement matching any of them is rejected (Go RE2 syntax, unanchored).
	Regex []string `json:"regex"`

	// Name of the rule in errors, metrics and the audit log; default circuit_break[<index>].
	// Beyond Pisanix.
	// +optional
	Name string `json:"name,omitempty"`

	// CaseInsensitive matching of regex. Beyond Pisanix.
	// +optional
	CaseInsensitive bool `json:"caseInsensitive,omitempty"`

	// Fingerprint matches statements by fingerprint (literals replaced by ?) or by its 64-digit
	// hex digest. Beyond Pisanix.
	// +optional
	Fingerprint []string `json:"fingerprint,omitempty"`

	// DryRun counts and logs matches without rejecting. Beyond Pisanix.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
}

// ConcurrencyControl lets at most maxConcurrency matching statements start per duration.
type ConcurrencyControl struct {
	// Regex: statements matching any of them are counted (Go RE2 syntax, unanchored).
	Regex []string `json:"regex"`

	// MaxConcurrency is the number of matching statements allowed at once.
	// +kubebuilder:validation:Minimum=1
	MaxConcurrency int32 `json:"maxConcurrency"`

	// Duration of the window in SECONDS (as pisa-proxy reads it; Pisanix's Go type said
	// nanoseconds but passed the number through); 0 = no window, a plain concurrency limit.
	// +kubebuilder:validation:Minimum=0
	Duration int64 `json:"duration"`

	// Name of the rule; default concurrency_control[<index>]. Beyond Pisanix.
	// +optional
	Name string `json:"name,omitempty"`

	// CaseInsensitive matching of regex. Beyond Pisanix.
	// +optional
	CaseInsensitive bool `json:"caseInsensitive,omitempty"`

	// Fingerprint matches statements by fingerprint or digest. Beyond Pisanix.
	// +optional
	Fingerprint []string `json:"fingerprint,omitempty"`

	// DryRun counts and logs instead of rejecting. Beyond Pisanix.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`

	// WaitTimeout is how long a statement may wait for a slot before it is rejected (Go
	// duration, e.g. "100ms"); absent = reject at once. Beyond Pisanix.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	// +optional
	WaitTimeout *metav1.Duration `json:"waitTimeout,omitempty"`

	// MaxQueue is how many statements may wait for a slot; 0 = unbounded. Beyond Pisanix.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxQueue int32 `json:"maxQueue,omitempty"`
}

// AccessControl is a per-user allow-list. Users that are not listed (such as the service's own
// user) are not restricted. Beyond Pisanix.
type AccessControl struct {
	// Users with their rules; each user appears once.
	// +listType=map
	// +listMapKey=user
	// +optional
	Users []AccessUser `json:"users,omitempty"`
}

// StatementKind is a class of SQL statements.
// +kubebuilder:validation:Enum=read;write;ddl;admin
type StatementKind string

const (
	StatementRead  StatementKind = "read"
	StatementWrite StatementKind = "write"
	StatementDDL   StatementKind = "ddl"
	StatementAdmin StatementKind = "admin"
)

// AccessUser is one user allowed to log in through the proxy, and what it may do. Beyond Pisanix.
// +kubebuilder:validation:XValidation:rule="!(has(self.password) && has(self.passwordSecretRef))",message="password and passwordSecretRef are mutually exclusive"
type AccessUser struct {
	// User name the client logs in with.
	// +kubebuilder:validation:MinLength=1
	User string `json:"user"`

	// Password of the user, in plain text.
	// +optional
	Password string `json:"password,omitempty"`

	// PasswordSecretRef takes the password from a Secret.
	// +optional
	PasswordSecretRef *SecretKeySelector `json:"passwordSecretRef,omitempty"`

	// Schemas the user may use; empty = any.
	// +optional
	Schemas []string `json:"schemas,omitempty"`

	// Tables the user may use: "db.table", "db.*" or "*"; empty = any table of an allowed schema.
	// +optional
	Tables []string `json:"tables,omitempty"`

	// Kinds of statements allowed; empty = all. Transaction and session statements are always
	// allowed.
	// +optional
	Kinds []StatementKind `json:"kinds,omitempty"`

	// MaxRows limits the rows a SELECT returns; 0 = no limit.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxRows int64 `json:"maxRows,omitempty"`
}

// AuditInclude selects which statements the audit log records.
// +kubebuilder:validation:Enum=all;slow;errors
type AuditInclude string

// Audit is the statement audit log of the proxy. Beyond Pisanix.
type Audit struct {
	// Output is "stdout", "stderr" or a file path in the sidecar.
	// +kubebuilder:validation:MinLength=1
	Output string `json:"output"`

	// MaxSizeMB rotates a file output at this size (proxy default 100).
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxSizeMB int32 `json:"maxSizeMB,omitempty"`

	// MaxBackups is how many rotated files are kept; 0 = all.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxBackups int32 `json:"maxBackups,omitempty"`

	// MaxAgeDays is how long rotated files are kept; 0 = forever.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxAgeDays int32 `json:"maxAgeDays,omitempty"`

	// Compress rotated files with gzip.
	// +optional
	Compress bool `json:"compress,omitempty"`

	// SampleRate is the share of ordinary statements logged, a decimal from 0 to 1 written as a
	// string (e.g. "0.1"); default "1". Slow, failed and rejected statements are always logged.
	// +kubebuilder:validation:Pattern=`^(0(\.[0-9]+)?|1(\.0+)?|\.[0-9]+)$`
	// +optional
	SampleRate string `json:"sampleRate,omitempty"`

	// SlowThreshold marks statements at least this long as slow (Go duration).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	// +optional
	SlowThreshold *metav1.Duration `json:"slowThreshold,omitempty"`

	// LogSQL logs statement text with literals; default logs the fingerprint.
	// +optional
	LogSQL bool `json:"logSQL,omitempty"`

	// Include: "all" (default), "slow" or "errors".
	// +optional
	Include AuditInclude `json:"include,omitempty"`

	// BufferSize is the queue between sessions and the writer.
	// +kubebuilder:validation:Minimum=0
	// +optional
	BufferSize int32 `json:"bufferSize,omitempty"`
}

// EndpointBreaker opens per endpoint when too many requests fail. Beyond Pisanix.
type EndpointBreaker struct {
	// ErrorRate of failed requests over window that opens the breaker, a decimal in (0, 1]
	// written as a string; default "0.5".
	// +kubebuilder:validation:Pattern=`^(0?\.[0-9]*[1-9][0-9]*|1(\.0+)?)$`
	// +optional
	ErrorRate string `json:"errorRate,omitempty"`

	// MinRequests in the window before the breaker may open (default 20).
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinRequests int32 `json:"minRequests,omitempty"`

	// Window over which failures are counted (Go duration; default 10s).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	// +optional
	Window *metav1.Duration `json:"window,omitempty"`

	// OpenFor is how long an open breaker refuses traffic (default 5s).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	// +optional
	OpenFor *metav1.Duration `json:"openFor,omitempty"`

	// HalfOpenMax trial requests at once while half-open (default 1).
	// +kubebuilder:validation:Minimum=0
	// +optional
	HalfOpenMax int32 `json:"halfOpenMax,omitempty"`

	// Timeout above which a request counts as a failure; absent = off.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// TrafficStrategyStatus is written by pisa-controller. Beyond Pisanix.
type TrafficStrategyStatus struct {
	// ObservedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: "Ready" (reasons Reconciled, NoEndpoints, InvalidRule, SecretNotFound);
	// "Deprecated" (reason DeprecatedFields) while the spec uses a deprecated or unhonoured
	// Pisanix field (monitorPeriod, successThreshold above 1).
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// Endpoints are the names of the DatabaseEndpoints the selector matches.
	// +optional
	Endpoints []string `json:"endpoints,omitempty"`
}

// TrafficStrategy is how the statements of a VirtualDatabase service are routed and governed.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ts,categories=pisanix
// +kubebuilder:printcolumn:name="Balance",type=string,JSONPath=`.spec.loadBalance.simpleLoadBalance.kind`
// +kubebuilder:printcolumn:name="Endpoints",type=string,JSONPath=`.status.endpoints`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TrafficStrategy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TrafficStrategySpec   `json:"spec"`
	Status TrafficStrategyStatus `json:"status,omitempty"`
}

// TrafficStrategyList is a list of TrafficStrategies.
// +kubebuilder:object:root=true
type TrafficStrategyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TrafficStrategy `json:"items"`
}

func init() {
	register(&TrafficStrategy{}, &TrafficStrategyList{})
}
