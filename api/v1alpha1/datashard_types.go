package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DataShardSpec holds the sharding rules of a VirtualDatabase service.
type DataShardSpec struct {
	// Rules, one per logical table.
	// +kubebuilder:validation:MinItems=1
	Rules []ShardingRule `json:"rules"`

	// TransactionMode is how a transaction that reaches several nodes commits: "xa"
	// (two-phase commit with MariaDB XA, atomic; the default) or "best_effort" (COMMIT on
	// each node in turn, not atomic). The XA decision log is written in the proxy
	// container (docs/sharding.md, "Transactions across shards").
	// +kubebuilder:validation:Enum=xa;best_effort
	// +optional
	TransactionMode string `json:"transactionMode,omitempty"`
}

// ShardingRule shards one logical table over the actual data nodes. Exactly one of
// tableStrategy, databaseStrategy and databaseTableStrategy must be set (Pisanix silently used
// the first one set).
// +kubebuilder:validation:XValidation:rule="(has(self.tableStrategy) ? 1 : 0) + (has(self.databaseStrategy) ? 1 : 0) + (has(self.databaseTableStrategy) ? 1 : 0) == 1",message="exactly one of tableStrategy, databaseStrategy and databaseTableStrategy must be set"
type ShardingRule struct {
	// TableName is the logical table.
	// +kubebuilder:validation:MinLength=1
	TableName string `json:"tableName"`

	// ActualDatanodes are the DatabaseEndpoints (or read/write splitting groups) holding the
	// shards, in shard order.
	// +optional
	ActualDatanodes *ActualDatanodesValue `json:"actualDatanodes,omitempty"`

	// TableStrategy shards the table into shardingCount tables (<table>_00000...) on each node.
	// +optional
	TableStrategy *TableStrategy `json:"tableStrategy,omitempty"`

	// DatabaseStrategy shards the table across the nodes (one shard per node).
	// +optional
	DatabaseStrategy *DatabaseStrategy `json:"databaseStrategy,omitempty"`

	// DatabaseTableStrategy shards across nodes and then into tables.
	// +optional
	DatabaseTableStrategy *DatabaseTableStrategy `json:"databaseTableStrategy,omitempty"`

	// ReadWriteSplittingGroup declares node groups (a primary and its replicas) that nodes can
	// name with valueFromReadWriteSplitting.
	// +listType=map
	// +listMapKey=name
	// +optional
	ReadWriteSplittingGroup []ReadWriteSplittingGroup `json:"readWriteSplittingGroup,omitempty"`

	// BindingTables are other rules' tables sharded exactly like this one (same strategy,
	// algorithms, counts and nodes): a SELECT joining them on their sharding columns runs on
	// each shard.
	// +listType=set
	// +optional
	BindingTables []string `json:"bindingTables,omitempty"`

	// BroadcastTables are reference tables with a full copy in the database of each of the
	// rule's nodes: writes reach every copy in one transaction, reads one copy (joins with
	// sharded tables are refused).
	// +listType=set
	// +optional
	BroadcastTables []string `json:"broadcastTables,omitempty"`

	// KeyGenerator fills the key column of an INSERT that omits it, before routing (beyond
	// Pisanix, which refuses such an INSERT, as the proxy does without a generator).
	// +optional
	KeyGenerator *KeyGenerator `json:"keyGenerator,omitempty"`
}

// KeyGenerator is a rule's key generator.
type KeyGenerator struct {
	// Type is the generator: snowflake (63-bit keys: milliseconds, worker id, sequence).
	// +kubebuilder:validation:Enum=snowflake
	Type string `json:"type"`

	// Column is the sharding column filled (default: the rule's sharding column when it has
	// one).
	// +optional
	Column string `json:"column,omitempty"`

	// WorkerID, when set, is the worker id of every sidecar using this DataShard: keys collide
	// when two of them insert into the same table (several replicas). Leave it out and the config
	// server allocates each sidecar pod its own worker id (docs/sharding.md, "Key generators").
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1023
	WorkerID *int32 `json:"workerId,omitempty"`
}

// ActualDatanodesValue lists the data nodes of a sharded table.
type ActualDatanodesValue struct {
	// ValueSource holds the node list.
	// +optional
	ValueSource *ValueSourceType `json:"valueSource,omitempty"`
}

// ValueSourceType is a list of nodes, or an expression.
type ValueSourceType struct {
	// Expression is accepted for Pisanix compatibility and ignored (as it was by Pisanix).
	// +optional
	Expression string `json:"expression,omitempty"`

	// Nodes in shard order.
	// +optional
	Nodes []ValueFromType `json:"nodes,omitempty"`
}

// ValueFromType is one data node: a DatabaseEndpoint name, or a read/write splitting group.
// +kubebuilder:validation:XValidation:rule="has(self.value) != has(self.valueFromReadWriteSplitting)",message="exactly one of value and valueFromReadWriteSplitting must be set"
type ValueFromType struct {
	// Value is a DatabaseEndpoint name.
	// +optional
	Value string `json:"value,omitempty"`

	// ValueFromReadWriteSplitting names a readWriteSplittingGroup.
	// +optional
	ValueFromReadWriteSplitting *ValueFromReadWriteSplitting `json:"valueFromReadWriteSplitting,omitempty"`
}

// ValueFromReadWriteSplitting refers to a read/write splitting group by name.
type ValueFromReadWriteSplitting struct {
	// Name of the group.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// TableStrategy shards a table into tables.
type TableStrategy struct {
	// TableShardingAlgorithmName is the sharding function.
	TableShardingAlgorithmName ShardingAlgorithm `json:"tableShardingAlgorithmName"`

	// TableShardingColumn is the sharding key.
	// +kubebuilder:validation:MinLength=1
	TableShardingColumn string `json:"tableShardingColumn"`

	// ShardingCount is the number of tables.
	// +kubebuilder:validation:Minimum=1
	ShardingCount int32 `json:"shardingCount"`
}

// DatabaseStrategy shards a table across data nodes.
type DatabaseStrategy struct {
	// DatabaseShardingAlgorithmName is the sharding function.
	DatabaseShardingAlgorithmName ShardingAlgorithm `json:"databaseShardingAlgorithmName"`

	// DatabaseShardingColumn is the sharding key.
	// +kubebuilder:validation:MinLength=1
	DatabaseShardingColumn string `json:"databaseShardingColumn"`
}

// DatabaseTableStrategy shards a table across data nodes, then into tables.
type DatabaseTableStrategy struct {
	// DatabaseShardingAlgorithmName is the node sharding function.
	DatabaseShardingAlgorithmName ShardingAlgorithm `json:"databaseShardingAlgorithmName"`

	// DatabaseShardingColumn is the node sharding key.
	// +kubebuilder:validation:MinLength=1
	DatabaseShardingColumn string `json:"databaseShardingColumn"`

	// TableShardingAlgorithmName is the table sharding function.
	TableShardingAlgorithmName ShardingAlgorithm `json:"tableShardingAlgorithmName"`

	// TableShardingColumn is the table sharding key.
	// +kubebuilder:validation:MinLength=1
	TableShardingColumn string `json:"tableShardingColumn"`

	// ShardingCount is the number of tables.
	// +kubebuilder:validation:Minimum=1
	ShardingCount int32 `json:"shardingCount"`
}

// ReadWriteSplittingGroup is a node group: its primary is the DatabaseEndpoint annotated
// database-mesh.io/role=readwrite, its replicas those annotated read; rules route within it.
type ReadWriteSplittingGroup struct {
	// Name of the group.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// Selector picks the group's DatabaseEndpoints in the namespace (beyond Pisanix). Without
	// it the group is made of the endpoints the service's TrafficStrategy selects, which only
	// one group may do: two groups of the same endpoints would put two shards on one server.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// Rules route statements within the group.
	// +optional
	Rules []ReadWriteSplittingRule `json:"rules,omitempty"`
}

// DataShardStatus is written by pisa-controller. Beyond Pisanix.
type DataShardStatus struct {
	// ObservedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: "Ready" (reasons Reconciled, DatabaseEndpointNotFound, InvalidRule).
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// DataShard is the sharding configuration of a VirtualDatabase service.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName={ds,shard},categories=pisanix
// +kubebuilder:printcolumn:name="Tables",type=string,JSONPath=`.spec.rules[*].tableName`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DataShard struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   DataShardSpec   `json:"spec"`
	Status DataShardStatus `json:"status,omitempty"`
}

// DataShardList is a list of DataShards.
// +kubebuilder:object:root=true
type DataShardList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DataShard `json:"items"`
}

func init() {
	register(&DataShard{}, &DataShardList{})
}
