package controller

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	k8serrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
	"github.com/database-mesh/pisanix-go/internal/controller/builder"
)

// maxMessage bounds a condition message (the API allows 32768 bytes).
const maxMessage = 4096

// readyCondition is the Ready condition for an object with the given problems.
func readyCondition(gen int64, ps []builder.Problem, okMessage string) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionReady, ObservedGeneration: gen}
	if len(ps) == 0 {
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v1alpha1.ReasonReconciled, okMessage
		return c
	}
	c.Status, c.Reason = metav1.ConditionFalse, ps[0].Reason
	msgs := make([]string, 0, len(ps))
	for _, p := range ps {
		m := p.Message
		if p.Service != "" {
			m = "service " + p.Service + ": " + m
		}
		if p.Reason != c.Reason {
			m = p.Reason + ": " + m
		}
		msgs = append(msgs, m)
	}
	c.Message = strings.Join(msgs, "; ")
	if len(c.Message) > maxMessage {
		c.Message = c.Message[:maxMessage-3] + "..."
	}
	return c
}

// patchStatus applies mutate to obj's status and patches it when it changed. A deleted object
// is not an error.
func patchStatus[T client.Object](ctx context.Context, c client.Client, obj T, mutate func(T)) error {
	orig := obj.DeepCopyObject().(T)
	mutate(obj)
	if equality.Semantic.DeepEqual(orig, obj) {
		return nil
	}
	err := c.Status().Patch(ctx, obj, client.MergeFrom(orig))
	if k8serrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("patch status of %T %s/%s: %w", obj, obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

// writeStatus writes the status of every object of the namespace from its build.
func (r *Reconciler) writeStatus(ctx context.Context, b *nsBuild) error {
	objs := &b.objs
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for i := range objs.VirtualDatabases {
		vdb := objs.VirtualDatabases[i].DeepCopy()
		a, ok := b.configs[vdb.Name]
		if !ok {
			continue
		}
		keep(patchStatus(ctx, r.Client, vdb, func(v *v1alpha1.VirtualDatabase) {
			vdbStatus(v, a)
		}))
	}
	for i := range objs.TrafficStrategies {
		o := objs.TrafficStrategies[i].DeepCopy()
		ps := b.problems[objKey{builder.KindTrafficStrategy, o.Name}]
		selected, err := builder.SelectEndpoints(o, objs.DatabaseEndpoints)
		if err != nil {
			selected = nil // a bad selector is reported as a problem when a service uses it
		}
		if err != nil && len(ps) == 0 {
			ps = []builder.Problem{{Kind: builder.KindTrafficStrategy, Name: o.Name,
				Reason: v1alpha1.ReasonInvalidSpec, Message: "spec.selector: " + err.Error()}}
		}
		keep(patchStatus(ctx, r.Client, o, func(o *v1alpha1.TrafficStrategy) {
			o.Status.ObservedGeneration = o.Generation
			o.Status.Endpoints = selected
			meta.SetStatusCondition(&o.Status.Conditions, readyCondition(o.Generation, ps, "the strategy is valid"))
			if d := builder.Deprecations(o); len(d) > 0 {
				meta.SetStatusCondition(&o.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionDeprecated,
					Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonDeprecatedFields, ObservedGeneration: o.Generation,
					Message: truncate(strings.Join(d, "; "), maxMessage)})
			} else {
				meta.RemoveStatusCondition(&o.Status.Conditions, v1alpha1.ConditionDeprecated)
			}
		}))
	}
	for i := range objs.DatabaseEndpoints {
		o := objs.DatabaseEndpoints[i].DeepCopy()
		ps := b.problems[objKey{builder.KindDatabaseEndpoint, o.Name}]
		keep(patchStatus(ctx, r.Client, o, func(o *v1alpha1.DatabaseEndpoint) {
			o.Status.ObservedGeneration = o.Generation
			if m := o.Spec.Database.MySQL; m != nil {
				port := m.Port
				if port == 0 {
					port = 3306
				}
				o.Status.Protocol, o.Status.Endpoint, o.Status.Port = "MySQL", m.Host, port
			}
			meta.SetStatusCondition(&o.Status.Conditions, readyCondition(o.Generation, ps, "the endpoint is valid"))
		}))
	}
	for i := range objs.DataShards {
		o := objs.DataShards[i].DeepCopy()
		ps := b.problems[objKey{builder.KindDataShard, o.Name}]
		keep(patchStatus(ctx, r.Client, o, func(o *v1alpha1.DataShard) {
			o.Status.ObservedGeneration = o.Generation
			meta.SetStatusCondition(&o.Status.Conditions, readyCondition(o.Generation, ps, "the shard rules are valid"))
		}))
	}
	for i := range objs.QoSClaims {
		o := objs.QoSClaims[i].DeepCopy()
		ps := b.problems[objKey{builder.KindQoSClaim, o.Name}]
		keep(patchStatus(ctx, r.Client, o, func(o *v1alpha1.QoSClaim) {
			o.Status.ObservedGeneration = o.Generation
			meta.SetStatusCondition(&o.Status.Conditions, readyCondition(o.Generation, ps, "the claim is valid"))
		}))
	}
	for i := range objs.SecurityClaims {
		o := objs.SecurityClaims[i].DeepCopy()
		ps := b.problems[objKey{builder.KindSecurityClaim, o.Name}]
		keep(patchStatus(ctx, r.Client, o, func(o *v1alpha1.SecurityClaim) {
			o.Status.ObservedGeneration = o.Generation
			meta.SetStatusCondition(&o.Status.Conditions, readyCondition(o.Generation, ps, "the claim is valid"))
		}))
	}
	return firstErr
}

// vdbStatus fills a VirtualDatabase's status from its build and its sidecars' reports (counted
// by Reconciler.sidecars).
func vdbStatus(v *v1alpha1.VirtualDatabase, a *appBuild) {
	st := &v.Status
	st.ObservedGeneration = v.Generation
	st.ConfigVersion = a.version
	st.Endpoints = a.endpoints
	if len(st.Endpoints) == 0 {
		st.Endpoints = nil
	}
	counts := a.sidecars
	st.Sidecars = &counts
	st.Rejected = a.rejected
	rejected, ps := a.rejected, a.problems
	cond := readyCondition(v.Generation, ps, fmt.Sprintf("configuration %d built", a.version))
	if a.held {
		cond.Message = truncate(fmt.Sprintf("still serving configuration %d: %s", a.version, cond.Message), maxMessage)
	}
	if len(ps) == 0 && len(rejected) > 0 {
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonConfigRejected
		cond.Message = truncate(fmt.Sprintf("%d sidecar(s) rejected the configuration; first: pod %s: %s",
			len(rejected), rejected[0].Pod, rejected[0].Error), maxMessage)
	}
	meta.SetStatusCondition(&st.Conditions, cond)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
