package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SecurityClaimSpec declares the transparent column encryption and the dynamic masking of a
// VirtualDatabase service (the Database Mesh "Security Claim"; beyond Pisanix). See
// docs/security-claim.md.
// +kubebuilder:validation:XValidation:rule="!has(self.encryptedTables) || size(self.encryptedTables) == 0 || has(self.activeKey)",message="activeKey is required when encryptedTables are set"
// +kubebuilder:validation:XValidation:rule="!has(self.assistedKey) || !has(self.activeKey) || self.assistedKey != self.activeKey",message="assistedKey must not be the activeKey"
type SecurityClaimSpec struct {
	// Keys are the data keys, each a 32-byte key taken from a Secret (64 hex digits or base64).
	// +listType=map
	// +listMapKey=id
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Keys []SecurityClaimKey `json:"keys,omitempty"`

	// ActiveKey is the id of the key new values are encrypted with; the others still decrypt
	// (rotation: add a key, make it active, run "pisa-proxy encrypt rotate").
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +optional
	ActiveKey string `json:"activeKey,omitempty"`

	// AssistedKey is the id of the HMAC-SHA-256 key of the assisted columns.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +optional
	AssistedKey string `json:"assistedKey,omitempty"`

	// EncryptedTables are the tables with encrypted columns.
	// +listType=map
	// +listMapKey=name
	// +optional
	EncryptedTables []EncryptedTable `json:"encryptedTables,omitempty"`

	// Masking are the dynamic masking rules.
	// +listType=map
	// +listMapKey=name
	// +optional
	Masking []MaskingRule `json:"masking,omitempty"`
}

// SecurityClaimKey is one key: its id (stored beside every ciphertext) and where its material is.
type SecurityClaimKey struct {
	// ID of the key.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	ID string `json:"id"`

	// SecretRef names the Secret key holding the key material.
	SecretRef SecretKeySelector `json:"secretRef"`
}

// EncryptedTable is a table whose columns are stored encrypted.
type EncryptedTable struct {
	// Name of the table, as statements write it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Name string `json:"name"`

	// Columns are the encrypted logical columns.
	// +kubebuilder:validation:MinItems=1
	// +listType=map
	// +listMapKey=name
	Columns []EncryptedColumn `json:"columns"`
}

// EncryptedColumn is a logical column the application reads and writes in plaintext.
// +kubebuilder:validation:XValidation:rule="self.cipherColumn != self.name",message="cipherColumn must differ from the logical name (the plaintext column of a migration is plainColumn)"
type EncryptedColumn struct {
	// Name is the logical column.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Name string `json:"name"`

	// CipherColumn stores the AES-256-GCM ciphertext (VARBINARY/BLOB).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	CipherColumn string `json:"cipherColumn"`

	// AssistedColumn stores HMAC-SHA-256 of the plaintext (BINARY(32)): =, IN, JOIN and unique
	// indexes work on it.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	AssistedColumn string `json:"assistedColumn,omitempty"`

	// PlainColumn, during a migration, is written with the plaintext too.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	PlainColumn string `json:"plainColumn,omitempty"`
}

// MaskingMode is how a masked value is returned.
// +kubebuilder:validation:Enum=keep;hash;null;fixed
type MaskingMode string

// MaskingRule returns a column masked to some users; stored data is unchanged.
// +kubebuilder:validation:XValidation:rule="self.mode == 'keep' || (!has(self.keepFirst) && !has(self.keepLast) && !has(self.maskChar))",message="keepFirst, keepLast and maskChar apply to mode keep only"
// +kubebuilder:validation:XValidation:rule="self.mode == 'fixed' || !has(self.fixed)",message="fixed applies to mode fixed only"
type MaskingRule struct {
	// Name of the rule (the audit log names the rules applied).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Users the rule applies to; empty: every user.
	// +optional
	Users []string `json:"users,omitempty"`

	// Table and Column name the masked column.
	// +kubebuilder:validation:MinLength=1
	Table string `json:"table"`
	// +kubebuilder:validation:MinLength=1
	Column string `json:"column"`

	// Mode: keep (the first keepFirst and last keepLast characters, the rest maskChar), hash
	// (hex SHA-256), null, or fixed.
	Mode MaskingMode `json:"mode"`

	// +kubebuilder:validation:Minimum=0
	// +optional
	KeepFirst int32 `json:"keepFirst,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +optional
	KeepLast int32 `json:"keepLast,omitempty"`
	// +kubebuilder:validation:MaxLength=4
	// +optional
	MaskChar string `json:"maskChar,omitempty"`
	// +optional
	Fixed string `json:"fixed,omitempty"`
}

// SecurityClaimStatus is written by pisa-controller.
type SecurityClaimStatus struct {
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
}

// SecurityClaim encrypts columns and masks results of the VirtualDatabase services that name it
// (services[].securityClaim).
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sc,categories=pisanix
// +kubebuilder:printcolumn:name="Active Key",type=string,JSONPath=`.spec.activeKey`
// +kubebuilder:printcolumn:name="Assisted Key",type=string,JSONPath=`.spec.assistedKey`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SecurityClaim struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SecurityClaimSpec   `json:"spec"`
	Status SecurityClaimStatus `json:"status,omitempty"`
}

// SecurityClaimList is a list of SecurityClaims.
// +kubebuilder:object:root=true
type SecurityClaimList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SecurityClaim `json:"items"`
}

func init() {
	register(&SecurityClaim{}, &SecurityClaimList{})
}
