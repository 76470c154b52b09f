package builder

import (
	"fmt"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// KindSecurityClaim is the kind of SecurityClaim problems.
const KindSecurityClaim = "SecurityClaim"

// securityClaim builds a service's [proxy.config.security_claim] from the SecurityClaim it
// names: key material from Secrets, tables and masking rules as they are. It returns the reason
// and an error for a problem of the SecurityClaim.
func (n *namespace) securityClaim(sc *v1alpha1.SecurityClaim) (*proxyconfig.SecurityClaim, string, error) {
	out := &proxyconfig.SecurityClaim{ActiveKey: sc.Spec.ActiveKey, AssistedKey: sc.Spec.AssistedKey}
	for i, k := range sc.Spec.Keys {
		data, ok := n.objs.Secrets[k.SecretRef.Name]
		if !ok {
			return nil, v1alpha1.ReasonSecretNotFound, fmt.Errorf("spec.keys[%d].secretRef: Secret %q not found", i, k.SecretRef.Name)
		}
		v, ok := data[k.SecretRef.Key]
		if !ok {
			return nil, v1alpha1.ReasonSecretNotFound, fmt.Errorf("spec.keys[%d].secretRef: Secret %q has no key %q", i, k.SecretRef.Name, k.SecretRef.Key)
		}
		if _, err := proxyconfig.DecodeKey(string(v)); err != nil {
			return nil, v1alpha1.ReasonInvalidSpec, fmt.Errorf("spec.keys[%d]: Secret %q key %q: %v", i, k.SecretRef.Name, k.SecretRef.Key, err)
		}
		out.Keys = append(out.Keys, proxyconfig.EncryptionKey{ID: k.ID, Value: string(v)})
	}
	for _, t := range sc.Spec.EncryptedTables {
		et := proxyconfig.EncryptedTable{Name: t.Name}
		for _, c := range t.Columns {
			et.Columns = append(et.Columns, proxyconfig.EncryptedColumn{Name: c.Name, CipherColumn: c.CipherColumn,
				AssistedColumn: c.AssistedColumn, PlainColumn: c.PlainColumn})
		}
		out.Tables = append(out.Tables, et)
	}
	for _, m := range sc.Spec.Masking {
		out.Masking = append(out.Masking, proxyconfig.MaskingRule{Name: m.Name, Users: m.Users, Table: m.Table,
			Column: m.Column, Mode: string(m.Mode), KeepFirst: int(m.KeepFirst), KeepLast: int(m.KeepLast),
			MaskChar: m.MaskChar, Fixed: m.Fixed})
	}
	return out, "", nil
}

// addSecurityClaim sets the service's security claim, or reports why it cannot.
func (b *proxyBuilder) addSecurityClaim(svc *v1alpha1.VirtualDatabaseService, out *built) bool {
	n := b.n
	sc := n.sc[svc.SecurityClaim]
	if sc == nil {
		b.ps.add(b.vdbProblem(svc, v1alpha1.ReasonSecurityClaimNotFound, "SecurityClaim %q not found", svc.SecurityClaim))
		return false
	}
	scFail := func(reason, format string, args ...any) bool {
		b.ps.add(Problem{Kind: KindSecurityClaim, Namespace: n.name, Name: sc.Name, Service: svc.Name,
			Reason: reason, Message: fmt.Sprintf(format, args...)})
		return false
	}
	// With a DataShard too, the listener is checked again once its
	// sharding rules are set (an encrypted sharding column is refused).
	claim, reason, err := n.securityClaim(sc)
	if err != nil {
		return scFail(reason, "%v", err)
	}
	out.listener.SecurityClaim = claim
	if err := checkAlone(out); err != nil {
		out.listener.SecurityClaim = nil
		return scFail(v1alpha1.ReasonInvalidRule, "%s", err)
	}
	return true
}
