package controller_test

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
)

// A selector that matches no endpoint (the seed's Socks-shop objects: the DatabaseEndpoint has
// no labels) shows on the VirtualDatabase: its Ready message names the TrafficStrategy, the
// endpoint it did not match and the kubectl label command; labelling makes it Ready.
func TestVirtualDatabaseNamesUnmatchedSelector(t *testing.T) {
	ctx, ns := setup(t)
	ep := endpoint(ns, "catalogue-db", "10.0.0.1", "pw", nil)
	ep.Labels = nil
	ts := strategy(ns, "catalogue")
	ts.Spec.Selector.MatchLabels = map[string]string{"source": "catalogue"}
	v := vdb(ns, "catalogue", "catalogue")
	create(ctx, t, ep, ts, v)
	eventually(t, "the VirtualDatabase names the selector's miss", func() string {
		st, reason, msg := ready(ctx, t, v, func() []metav1.Condition { return v.Status.Conditions })
		if st != metav1.ConditionFalse || reason != v1alpha1.ReasonNoEndpoints {
			return fmt.Sprintf("vdb Ready=%s %s %q", st, reason, msg)
		}
		for _, want := range []string{`TrafficStrategy "catalogue"`, "source=catalogue", "catalogue-db (no labels)",
			"kubectl label databaseendpoint -n " + ns + " catalogue-db source=catalogue"} {
			if !strings.Contains(msg, want) {
				return fmt.Sprintf("message lacks %q: %q", want, msg)
			}
		}
		return ""
	})
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(ep), ep); err != nil {
			return err
		}
		ep.Labels = map[string]string{"source": "catalogue"}
		return k8s.Update(ctx, ep)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Ready after kubectl label", func() string {
		st, reason, msg := ready(ctx, t, v, func() []metav1.Condition { return v.Status.Conditions })
		if st != metav1.ConditionTrue {
			return fmt.Sprintf("vdb Ready=%s %s %q", st, reason, msg)
		}
		return ""
	})
}

// Pisanix's MHA spelling (monitorPeriod, successThreshold) is accepted and reported in the
// TrafficStrategy's Deprecated condition, which goes away once the spec is modernised.
func TestDeprecatedCondition(t *testing.T) {
	ctx, ns := setup(t)
	ts := strategy(ns, "shop")
	period := int64(1500)
	ts.Spec.LoadBalance = &v1alpha1.LoadBalance{ReadWriteSplitting: &v1alpha1.ReadWriteSplitting{
		Dynamic: &v1alpha1.ReadWriteSplittingDynamic{
			DefaultTarget: v1alpha1.TargetReadWrite,
			Discovery: v1alpha1.ReadWriteDiscovery{MasterHighAvailability: &v1alpha1.MasterHighAvailability{
				User: "monitor", Password: "monitor", MonitorPeriod: &period,
				PingProbe: &v1alpha1.Probe{PeriodMilliseconds: 1000, TimeoutMilliseconds: 6000, FailureThreshold: 3, SuccessThreshold: 2},
			}},
		}}}
	create(ctx, t, endpoint(ns, "shop-db", "10.0.0.1", "pw", nil), ts, vdb(ns, "shop", "shop"))
	deprecated := func() *metav1.Condition {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(ts), ts); err != nil {
			t.Fatal(err)
		}
		return meta.FindStatusCondition(ts.Status.Conditions, v1alpha1.ConditionDeprecated)
	}
	eventually(t, "Deprecated condition", func() string {
		c := deprecated()
		if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "monitorPeriod is deprecated") ||
			!strings.Contains(c.Message, "pingProbe.successThreshold 2 is not honoured") {
			return fmt.Sprintf("%+v", c)
		}
		if s, _ := fetch(t, ns, "shop"); s == nil || len(s.Proxy.Config) != 1 || !strings.Contains(string(s.Proxy.Config[0]), `"monitor_period":1500`) {
			return fmt.Sprintf("config %+v", s)
		}
		return ""
	})
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(ts), ts); err != nil {
			return err
		}
		mha := ts.Spec.LoadBalance.ReadWriteSplitting.Dynamic.Discovery.MasterHighAvailability
		mha.MonitorInterval, mha.MonitorPeriod, mha.PingProbe.SuccessThreshold = 1500, nil, 1
		return k8s.Update(ctx, ts)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Deprecated condition removed", func() string {
		if c := deprecated(); c != nil {
			return fmt.Sprintf("%+v", c)
		}
		return ""
	})
}
