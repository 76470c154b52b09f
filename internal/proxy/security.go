package proxy

import (
	"fmt"

	"github.com/database-mesh/pisanix-go/internal/proxy/crypt"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/prometheus/client_golang/prometheus"
)

// The security claim's hooks in the data path (docs/security-claim.md):
// statements naming encrypted or masked tables are rewritten by
// internal/proxy/crypt before they are sent, prepared-statement
// parameters are rebuilt on each execute, and the result sets of such
// statements go through relaySecureResultSet, which decrypts, drops and masks
// columns row by row. Other statements take the usual zero-copy path.

// EnableSecurityMetrics registers the security claim's metrics with reg.
// Call it before the first Apply.
func (p *Proxy) EnableSecurityMetrics(reg prometheus.Registerer) {
	p.secMetrics = crypt.NewMetrics(reg)
}

// compileSecurity builds the listener's security claim (nil without one).
func (p *Proxy) compileSecurity(lc *proxyconfig.Listener, rt *runtime) error {
	if lc.SecurityClaim == nil {
		return nil
	}
	sc, err := crypt.Compile(lc.SecurityClaim)
	if err != nil {
		return fmt.Errorf("security_claim: %w", err)
	}
	if rt.shard != nil {
		// Result columns name physical tables (t_user_1).
		sc.SetPhysicalNames(rt.shard.PhysicalNames())
	}
	sc.Bind(p.secMetrics, lc.Name)
	rt.sec = sc
	return nil
}
