package proxy

import (
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// BenchmarkRelayRowsHashed is BenchmarkRelayRows (deprecateEOF) with and
// without transaction replay's checksum of what the client is sent.
func BenchmarkRelayRowsHashed(b *testing.B) {
	const rows = 1000
	stream := encodeResultSet(rows)
	for _, hashed := range []bool{false, true} {
		name := "plain"
		if hashed {
			name = "hashed"
		}
		b.Run(name, func(b *testing.B) {
			s := benchSession(stream, mysql.ClientProtocol41|mysql.ClientDeprecateEOF)
			s.txl.h.SetSeed(txSeed)
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.be.SetSeq(1)
				s.client.SetSeq(1)
				s.txl.hashing = hashed
				s.txl.h.Reset()
				r, err := s.relayResults(false)
				if err != nil || r.rows != rows {
					b.Fatalf("relay: %v rows=%d", err, r.rows)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		})
	}
}
