package v1alpha1

// SecretKeySelector names one key of a Secret in the namespace of the object that refers to it.
// Beyond Pisanix: Pisanix only took plain-text passwords.
type SecretKeySelector struct {
	// Name of the Secret, in the same namespace as the referring object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Key within the Secret's data whose value is the password.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// LoadBalanceAlgorithm picks an endpoint among several.
// +kubebuilder:validation:Enum=random;roundrobin
type LoadBalanceAlgorithm string

const (
	LoadBalanceRandom     LoadBalanceAlgorithm = "random"
	LoadBalanceRoundRobin LoadBalanceAlgorithm = "roundrobin"
)

// ReadWriteSplittingTarget is where a statement goes: the replicas ("read") or the primary
// ("readwrite").
// +kubebuilder:validation:Enum=read;readwrite
type ReadWriteSplittingTarget string

const (
	TargetRead      ReadWriteSplittingTarget = "read"
	TargetReadWrite ReadWriteSplittingTarget = "readwrite"
)

// RuleType is the kind of a read/write splitting rule: "regex" matches the statement text with
// regular expressions; "generic" routes by statement class (reads to replicas).
// +kubebuilder:validation:Enum=regex;generic
type RuleType string

const (
	RuleTypeRegex   RuleType = "regex"
	RuleTypeGeneric RuleType = "generic"
)

// ShardingAlgorithm is a sharding function of pisa-proxy.
// +kubebuilder:validation:Enum=mod;crc32mod
type ShardingAlgorithm string

const (
	ShardingMod      ShardingAlgorithm = "mod"
	ShardingCRC32Mod ShardingAlgorithm = "crc32mod"
)

// Condition types and reasons written by pisa-controller into status.conditions of every kind
// (beyond Pisanix, which wrote no status).
const (
	// ConditionReady is True when the object was read, validated and every object it refers to
	// was found; its reason says what is missing otherwise.
	ConditionReady = "Ready"

	// ConditionDeprecated is True while a TrafficStrategy uses a field kept only for Pisanix
	// compatibility (its message names each field and what to write instead).
	ConditionDeprecated = "Deprecated"
	// ReasonDeprecatedFields: the reason of the Deprecated condition.
	ReasonDeprecatedFields = "DeprecatedFields"

	// ReasonReconciled: the object is valid and everything it refers to exists.
	ReasonReconciled = "Reconciled"
	// ReasonTrafficStrategyNotFound: a VirtualDatabase service names a TrafficStrategy that does
	// not exist in its namespace.
	ReasonTrafficStrategyNotFound = "TrafficStrategyNotFound"
	// ReasonDataShardNotFound: a VirtualDatabase service names a missing DataShard.
	ReasonDataShardNotFound = "DataShardNotFound"
	// ReasonQoSClaimNotFound: a VirtualDatabase service names a missing QoSClaim.
	ReasonQoSClaimNotFound = "QoSClaimNotFound"
	// ReasonSecurityClaimNotFound: a VirtualDatabase service names a missing SecurityClaim.
	ReasonSecurityClaimNotFound = "SecurityClaimNotFound"
	// ReasonDatabaseEndpointNotFound: a DataShard names a DatabaseEndpoint that does not exist.
	ReasonDatabaseEndpointNotFound = "DatabaseEndpointNotFound"
	// ReasonNoEndpoints: a TrafficStrategy's selector matches no DatabaseEndpoint.
	ReasonNoEndpoints = "NoEndpoints"
	// ReasonInvalidRule: a rule cannot be compiled (bad regular expression, unknown node group,
	// read/write splitting without a readwrite endpoint...). The message names the rule.
	ReasonInvalidRule = "InvalidRule"
	// ReasonSecretNotFound: a passwordSecretRef names a missing Secret or key.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonInvalidSpec: a value the API server's schema cannot check is wrong (a QoS rate tc
	// cannot parse, duplicate names...). The message names the field.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonConfigRejected: at least one sidecar rejected the latest proxy configuration
	// (VirtualDatabase only; see status.rejected).
	ReasonConfigRejected = "ConfigRejected"
)

// DatabaseEndpointRoleAnnotation is the DatabaseEndpoint annotation that marks an endpoint as a
// replica ("read") or a primary ("readwrite", the default when absent).
const DatabaseEndpointRoleAnnotation = "database-mesh.io/role"
