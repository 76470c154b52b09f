package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DatabaseEndpointSpec is a real database server.
type DatabaseEndpointSpec struct {
	// Database is the server, by protocol; MySQL is the only protocol.
	Database Database `json:"database"`
}

// Database holds one protocol-specific endpoint.
type Database struct {
	// MySQL server (JSON name "MySQL", capitalised, as in Pisanix).
	// +optional
	MySQL *MySQL `json:"MySQL,omitempty"`
}

// MySQL is a MySQL server and the credentials the proxy logs in with.
// +kubebuilder:validation:XValidation:rule="!(has(self.password) && has(self.passwordSecretRef))",message="password and passwordSecretRef are mutually exclusive"
type MySQL struct {
	// Host name or IP address of the server.
	// +optional
	Host string `json:"host,omitempty"`

	// Port of the server.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// User the proxy logs in with.
	// +optional
	User string `json:"user,omitempty"`

	// Password of user, in plain text. Prefer passwordSecretRef.
	// +optional
	Password string `json:"password,omitempty"`

	// PasswordSecretRef takes the password from a Secret in the same namespace. Beyond Pisanix.
	// +optional
	PasswordSecretRef *SecretKeySelector `json:"passwordSecretRef,omitempty"`

	// DB is the schema the proxy's connections use.
	// +optional
	DB string `json:"db,omitempty"`
}

// DatabaseEndpointStatus is written by pisa-controller. protocol, endpoint, port and arn are the
// fields of Pisanix master (written there by its AWS reconciler only); the rest is beyond
// Pisanix.
type DatabaseEndpointStatus struct {
	// ObservedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: "Ready" (reasons Reconciled, SecretNotFound, InvalidSpec).
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// Arn of the AWS resource (Pisanix master; not written by pisa-controller).
	// +optional
	Arn string `json:"arn,omitempty"`

	// Protocol of the endpoint ("MySQL").
	// +optional
	Protocol string `json:"protocol,omitempty"`

	// Endpoint is the server's host.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// Port is the server's port.
	// +optional
	Port int32 `json:"port,omitempty"`
}

// DatabaseEndpoint is a real database server a TrafficStrategy can route to. Its name is the
// proxy's node name; the annotation database-mesh.io/role ("read" | "readwrite", default
// "readwrite") gives its role for static read/write splitting.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dbep,categories=pisanix
// +kubebuilder:printcolumn:name="Protocol",type=string,JSONPath=`.status.protocol`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`
// +kubebuilder:printcolumn:name="Port",type=integer,JSONPath=`.status.port`
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=`.metadata.annotations.database-mesh\.io/role`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DatabaseEndpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   DatabaseEndpointSpec   `json:"spec"`
	Status DatabaseEndpointStatus `json:"status,omitempty"`
}

// DatabaseEndpointList is a list of DatabaseEndpoints.
// +kubebuilder:object:root=true
type DatabaseEndpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DatabaseEndpoint `json:"items"`
}

func init() {
	register(&DatabaseEndpoint{}, &DatabaseEndpointList{})
}
