package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// QoSClaimSpec asks pisa-daemon to limit the bandwidth of a service's database traffic.
type QoSClaimSpec struct {
	// TrafficQoS is the limit.
	TrafficQoS TrafficQoS `json:"trafficQoS"`
}

// TrafficQoS is a named bandwidth class.
type TrafficQoS struct {
	// Name of the QoS class.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// QoSGroup holds the rates (JSON name "qos_group", snake case, as in Pisanix).
	// +optional
	QoSGroup *QoSGroup `json:"qos_group,omitempty"`
}

// QoSGroup is an HTB class: a guaranteed rate and a ceiling it may borrow up to. Rates use tc
// units, case-insensitive: bit, kbit, mbit, gbit, tbit are bits/s; bps, kbps, mbps, gbps, tbps are
// BYTES/s; kibit, mibps... use 1024 multipliers; a bare number is bits/s.
type QoSGroup struct {
	// Rate is the guaranteed rate, e.g. "1mbit".
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]*)?|\.[0-9]+)(([kKmMgGtT][iI]?)?([bB][iI][tT]|[bB][pP][sS]))?$`
	// +optional
	Rate string `json:"rate,omitempty"`

	// Ceil is the most the class may use when bandwidth is free (default: rate), e.g. "2mbit".
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]*)?|\.[0-9]+)(([kKmMgGtT][iI]?)?([bB][iI][tT]|[bB][pP][sS]))?$`
	// +optional
	Ceil string `json:"ceil,omitempty"`
}

// QoSClaimStatus is written by pisa-controller. Beyond Pisanix.
type QoSClaimStatus struct {
	// ObservedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: "Ready" (reasons Reconciled, InvalidSpec).
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// QoSClaim is a bandwidth limit for the database traffic of a VirtualDatabase service, enforced
// on the nodes by pisa-daemon.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=qc,categories=pisanix
// +kubebuilder:printcolumn:name="QoS",type=string,JSONPath=`.spec.trafficQoS.name`
// +kubebuilder:printcolumn:name="Rate",type=string,JSONPath=`.spec.trafficQoS.qos_group.rate`
// +kubebuilder:printcolumn:name="Ceil",type=string,JSONPath=`.spec.trafficQoS.qos_group.ceil`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type QoSClaim struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   QoSClaimSpec   `json:"spec"`
	Status QoSClaimStatus `json:"status,omitempty"`
}

// QoSClaimList is a list of QoSClaims.
// +kubebuilder:object:root=true
type QoSClaimList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []QoSClaim `json:"items"`
}

func init() {
	register(&QoSClaim{}, &QoSClaimList{})
}
