package proxy

import (
	"fmt"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/crypt"
)

// The security claim on a sharding listener (docs/security-claim.md,
// "Sharding"): the crypt rewriter rewrites the client's text before the
// sharding planner plans it, so the shards get ciphertext and assisted
// values; a statement on one shard is relayed through relaySecureResultSet like any
// other, and the rows a scatter merges are decrypted and masked after the
// merge (secMerged). Physical table names map to their logical tables
// (crypt.Schema.SetPhysicalNames).

// secMerged returns the transformer for the merged result of the running
// statement, nil when the statement's results pass unchanged.
func (s *session) secMerged() *crypt.Transformer {
	if !s.sec.active {
		return nil
	}
	return s.sec.tr
}

// secMergedRowFailed ends a merged result set whose row does not decrypt:
// an ERR packet in place of the rest of the rows (the sources were
// drained by the caller).
func (s *session) secMergedRowFailed(rt *runtime, terr error, r *result) error {
	if rt.sec != nil {
		rt.sec.CountDecryptFailure()
	}
	if ok, n := s.l.logLimit.allow("security_claim_decrypt"); ok {
		s.logger.Warn("merged result row not sent: a stored value does not decrypt", "error", terr, "suppressed_since_last", n)
	}
	s.l.metrics.ShardMergedRows(rt.name, r.rows)
	me := mysql.NewError(mysql.ErrCodeUnknown, "HY000", "%s", "pisa-proxy security claim: "+terr.Error())
	r.err = me
	s.errSent = true
	s.scratch = mysql.AppendErr(s.scratch[:0], me)
	if err := s.client.WritePacketFlush(s.scratch); err != nil {
		return fmt.Errorf("%w: %w", errClientWrite, err)
	}
	s.l.metrics.Error(rt.name, me.Code)
	return nil
}

// secPrepareDefs turns a sharded statement's sample metadata into what the
// client is told: its own n parameters, the result columns as the
// transformer sends them. Copies: the transformer reuses its buffers.
func secPrepareDefs(tr *crypt.Transformer, paramDefs, colDefs [][]byte, n int) ([][]byte, [][]byte, error) {
	if len(paramDefs) > n {
		paramDefs = paramDefs[:n]
	}
	if len(colDefs) == 0 {
		return paramDefs, colDefs, nil
	}
	out, err := tr.Columns(colDefs)
	if err != nil {
		return nil, nil, err
	}
	cols := make([][]byte, len(out))
	for i, d := range out {
		cols[i] = append([]byte(nil), d...)
	}
	return paramDefs, cols, nil
}
