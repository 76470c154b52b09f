package controller_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
)

// TestSecurityClaimBuiltIntoProxyConfig: a SecurityClaim named by a VirtualDatabase service
// reaches the served proxy configuration with its keys taken from a Secret; a missing key
// Secret is reported on the claim (SecretNotFound) and the service is left out; a key
// rotated in the Secret reaches the configuration.
func TestSecurityClaimBuiltIntoProxyConfig(t *testing.T) {
	ctx, ns := setup(t)
	const k1 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	const h1 = "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
	sc := &v1alpha1.SecurityClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pii"},
		Spec: v1alpha1.SecurityClaimSpec{
			ActiveKey: "k1", AssistedKey: "h1",
			Keys: []v1alpha1.SecurityClaimKey{
				{ID: "k1", SecretRef: v1alpha1.SecretKeySelector{Name: "pii-keys", Key: "k1"}},
				{ID: "h1", SecretRef: v1alpha1.SecretKeySelector{Name: "pii-keys", Key: "h1"}},
			},
			EncryptedTables: []v1alpha1.EncryptedTable{{Name: "customers", Columns: []v1alpha1.EncryptedColumn{
				{Name: "email", CipherColumn: "email_cipher", AssistedColumn: "email_assisted"}}}},
			Masking: []v1alpha1.MaskingRule{{Name: "m1", Table: "customers", Column: "phone", Mode: "keep", KeepLast: 4}},
		},
	}
	v := vdb(ns, "shop", "shop")
	v.Spec.Services[0].SecurityClaim = "pii"
	create(ctx, t, endpoint(ns, "shop-db", "10.0.0.1", "pw", nil), strategy(ns, "shop"), sc, v)
	eventually(t, "SecurityClaim reports SecretNotFound", func() string {
		st, reason, msg := ready(ctx, t, sc, func() []metav1.Condition { return sc.Status.Conditions })
		if st != metav1.ConditionFalse || reason != v1alpha1.ReasonSecretNotFound || !strings.Contains(msg, "pii-keys") {
			return fmt.Sprintf("Ready=%s %s %q", st, reason, msg)
		}
		return ""
	})
	if s, code := fetch(t, ns, "shop"); code != 200 || len(s.Proxy.Config) != 0 {
		t.Fatalf("a service whose claim has no keys is served: %d %+v", code, s)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pii-keys"},
		Data: map[string][]byte{"k1": []byte(k1), "h1": []byte(h1)}}
	create(ctx, t, secret)
	type listener struct {
		SecurityClaim struct {
			ActiveKey string `json:"active_key"`
			Keys      []struct {
				ID, Value string
			} `json:"key"`
			Tables []struct {
				Name string `json:"name"`
			} `json:"table"`
			Masking []struct {
				Name string `json:"name"`
			} `json:"masking"`
		} `json:"security_claim"`
	}
	var first string
	eventually(t, "claim served and Ready", func() string {
		if st, r, m := ready(ctx, t, sc, func() []metav1.Condition { return sc.Status.Conditions }); st != metav1.ConditionTrue {
			return fmt.Sprintf("claim Ready=%s %s %q", st, r, m)
		}
		s, code := fetch(t, ns, "shop")
		if code != 200 || len(s.Proxy.Config) != 1 {
			return fmt.Sprintf("config %d %+v", code, s)
		}
		var l listener
		if err := json.Unmarshal(s.Proxy.Config[0], &l); err != nil {
			return err.Error()
		}
		c := l.SecurityClaim
		if c.ActiveKey != "k1" || len(c.Keys) != 2 || c.Keys[0].Value != k1 || len(c.Tables) != 1 || c.Tables[0].Name != "customers" ||
			len(c.Masking) != 1 {
			return fmt.Sprintf("security_claim %+v", c)
		}
		first = s.Version
		return ""
	})
	// Rotation: a new key in the Secret and the claim reaches the configuration.
	secret.Data["k2"] = []byte(strings.Repeat("ab", 32))
	if err := k8s.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(sc), sc); err != nil {
		t.Fatal(err)
	}
	sc.Spec.Keys = append(sc.Spec.Keys, v1alpha1.SecurityClaimKey{ID: "k2", SecretRef: v1alpha1.SecretKeySelector{Name: "pii-keys", Key: "k2"}})
	sc.Spec.ActiveKey = "k2"
	if err := k8s.Update(ctx, sc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "rotated key served", func() string {
		s, _ := fetch(t, ns, "shop")
		if s == nil || len(s.Proxy.Config) != 1 || s.Version == first {
			return fmt.Sprintf("%+v", s)
		}
		var l listener
		_ = json.Unmarshal(s.Proxy.Config[0], &l)
		if l.SecurityClaim.ActiveKey != "k2" || len(l.SecurityClaim.Keys) != 3 {
			return fmt.Sprintf("security_claim %+v", l.SecurityClaim)
		}
		first = s.Version
		return ""
	})
	// A key changed in the Secret alone (the claim unchanged) reaches the
	// configuration: the controller watches the claims' key Secrets.
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(secret), secret); err != nil {
		t.Fatal(err)
	}
	secret.Data["k2"] = []byte(strings.Repeat("cd", 32))
	if err := k8s.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	eventually(t, "key changed in the Secret served", func() string {
		s, _ := fetch(t, ns, "shop")
		if s == nil || len(s.Proxy.Config) != 1 || s.Version == first {
			return fmt.Sprintf("%+v", s)
		}
		var l listener
		_ = json.Unmarshal(s.Proxy.Config[0], &l)
		for _, k := range l.SecurityClaim.Keys {
			if k.ID == "k2" && k.Value == strings.Repeat("cd", 32) {
				return ""
			}
		}
		return fmt.Sprintf("security_claim keys %+v", l.SecurityClaim.Keys)
	})
}
