// Package controller holds pisa-controller's reconcilers: they turn the core.database-mesh.io
// custom resources into versioned proxy and daemon configurations and write the resources'
// status.
package controller

// The permissions pisa-controller needs. `make generate` writes config/rbac/role.yaml from these
// markers; change them here, not in the YAML.
//
// +kubebuilder:rbac:groups=core.database-mesh.io,resources=virtualdatabases;trafficstrategies;databaseendpoints;datashards;qosclaims;securityclaims,verbs=get;list;watch
// +kubebuilder:rbac:groups=core.database-mesh.io,resources=virtualdatabases/status;trafficstrategies/status;databaseendpoints/status;datashards/status;qosclaims/status;securityclaims/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;create;update
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
