package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// VirtualDatabaseSpec declares the databases an application sees: one MySQL listener of the
// pisa-proxy sidecar per service.
type VirtualDatabaseSpec struct {
	// DatabaseClassName names a cluster-scoped DatabaseClass that provisions the backing database
	// (Pisanix master, AWS RDS). Accepted and stored; pisa-controller does not provision
	// databases.
	// +optional
	DatabaseClassName string `json:"databaseClassName,omitempty"`

	// Services are the listeners of the proxy. Service names are unique within the object.
	// +kubebuilder:validation:MinItems=1
	// +listType=map
	// +listMapKey=name
	Services []VirtualDatabaseService `json:"services"`
}

// VirtualDatabaseService is one database the application connects to, and the strategies that
// govern its traffic.
type VirtualDatabaseService struct {
	DatabaseService `json:",inline"`

	// Name of the service: the proxy listener name and the "domain" label of its metrics.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// TrafficStrategy names a TrafficStrategy in the same namespace.
	// +optional
	TrafficStrategy string `json:"trafficStrategy,omitempty"`

	// DataShard names a DataShard in the same namespace (sharding rules of this service).
	// +optional
	DataShard string `json:"dataShard,omitempty"`

	// QoSClaim names a QoSClaim (bandwidth limit applied by pisa-daemon).
	// +optional
	QoSClaim string `json:"qosClaim,omitempty"`

	// SecurityClaim names a SecurityClaim in the same namespace (column encryption and
	// masking). Beyond Pisanix. With dataShard, no sharding column may be encrypted.
	// +optional
	SecurityClaim string `json:"securityClaim,omitempty"`
}

// DatabaseService is the protocol-specific part of a service; MySQL is the only protocol.
type DatabaseService struct {
	// DatabaseMySQL is the MySQL listener: where the proxy listens and the credentials the
	// application logs in with.
	// +required
	DatabaseMySQL *DatabaseMySQL `json:"databaseMySQL"`
}

// DatabaseMySQL is the MySQL server the proxy presents to the application.
// +kubebuilder:validation:XValidation:rule="!(has(self.password) && has(self.passwordSecretRef))",message="password and passwordSecretRef are mutually exclusive"
type DatabaseMySQL struct {
	// Host the proxy listens on; default 0.0.0.0.
	// +optional
	Host string `json:"host,omitempty"`

	// Port the proxy listens on; default 3306.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// User the application must log in with.
	// +optional
	User string `json:"user,omitempty"`

	// Password the application must log in with, in plain text. Prefer passwordSecretRef.
	// +optional
	Password string `json:"password,omitempty"`

	// PasswordSecretRef takes the password from a Secret in the same namespace instead of
	// password. Beyond Pisanix.
	// +optional
	PasswordSecretRef *SecretKeySelector `json:"passwordSecretRef,omitempty"`

	// DB is the schema of the service; a client that names another schema is refused.
	// +optional
	DB string `json:"db,omitempty"`

	// PoolSize is the backend connection pool size per endpoint (proxy default 64).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=255
	// +optional
	PoolSize int32 `json:"poolSize,omitempty"`

	// ServerVersion is the version string the proxy announces in its handshake (default 5.7.37).
	// +optional
	ServerVersion string `json:"serverVersion,omitempty"`
}

// VirtualDatabaseStatus is written by pisa-controller. Beyond Pisanix, which declared an
// "endpoints" list and never wrote it.
type VirtualDatabaseStatus struct {
	// ObservedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: "Ready" (reasons Reconciled, TrafficStrategyNotFound, DataShardNotFound,
	// QoSClaimNotFound, NoEndpoints, InvalidRule, SecretNotFound, ConfigRejected).
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// Endpoints are the names of the DatabaseEndpoints the services route to.
	// +optional
	Endpoints []string `json:"endpoints,omitempty"`

	// ConfigVersion is the version of the latest proxy configuration built for this
	// VirtualDatabase; it increases whenever the configuration changes.
	// +optional
	ConfigVersion int64 `json:"configVersion,omitempty"`

	// Sidecars counts the proxies that fetch this VirtualDatabase's configuration.
	// +optional
	Sidecars *SidecarCounts `json:"sidecars,omitempty"`

	// Rejected lists sidecars whose last reported apply failed.
	// +listType=map
	// +listMapKey=pod
	// +optional
	Rejected []SidecarRejection `json:"rejected,omitempty"`
}

// SidecarCounts counts the sidecars of a VirtualDatabase.
type SidecarCounts struct {
	// Total sidecars that reported in.
	Total int32 `json:"total"`
	// Current sidecars that run status.configVersion.
	Current int32 `json:"current"`
}

// SidecarRejection is a sidecar that refused a configuration.
type SidecarRejection struct {
	// Pod is the sidecar's pod name.
	Pod string `json:"pod"`
	// Version is the configuration version it refused.
	Version int64 `json:"version"`
	// Error is the proxy's reason.
	Error string `json:"error"`
}

// VirtualDatabase is the database an application sees: the listeners of its pisa-proxy sidecar.
// Its name must equal the application's (Deployment, StatefulSet...) name.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=vdb,categories=pisanix
// +kubebuilder:printcolumn:name="Services",type=string,JSONPath=`.spec.services[*].name`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Config",type=integer,JSONPath=`.status.configVersion`
// +kubebuilder:printcolumn:name="Current",type=integer,JSONPath=`.status.sidecars.current`
// +kubebuilder:printcolumn:name="Sidecars",type=integer,JSONPath=`.status.sidecars.total`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VirtualDatabase struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   VirtualDatabaseSpec   `json:"spec"`
	Status VirtualDatabaseStatus `json:"status,omitempty"`
}

// VirtualDatabaseList is a list of VirtualDatabases.
// +kubebuilder:object:root=true
type VirtualDatabaseList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VirtualDatabase `json:"items"`
}

func init() {
	register(&VirtualDatabase{}, &VirtualDatabaseList{})
}
