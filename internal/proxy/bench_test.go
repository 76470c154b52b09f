package proxy

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/metrics"
	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// memConn is a net.Conn that reads a fixed byte stream over and over and
// discards writes.
type memConn struct {
	data []byte
	pos  int
}

func (m *memConn) Read(b []byte) (int, error) {
	if m.pos == len(m.data) {
		m.pos = 0
	}
	n := copy(b, m.data[m.pos:])
	m.pos += n
	return n, nil
}
func (m *memConn) Write(b []byte) (int, error)      { return len(b), nil }
func (m *memConn) Close() error                     { return nil }
func (m *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (m *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }

type bufConn struct {
	memConn
	w bytes.Buffer
}

func (b *bufConn) Write(p []byte) (int, error) { return b.w.Write(p) }

// encodeResultSet builds a backend response: 3 columns, rows, classic EOFs,
// sequence ids from 1.
func encodeResultSet(rows int) []byte {
	bc := &bufConn{}
	c := mysql.NewConn(bc)
	c.SetSeq(1)
	c.WritePacket([]byte{3})
	for i := 0; i < 3; i++ {
		col := []byte{}
		for _, s := range []string{"def", "sbtest", "sbtest1", "sbtest1", fmt.Sprintf("c%d", i), fmt.Sprintf("c%d", i)} {
			col = mysql.AppendLenEncString(col, s)
		}
		col = append(col, 0x0c, 45, 0, 0, 1, 0, 0, 253, 0, 0, 0, 0, 0)
		c.WritePacket(col)
	}
	c.WritePacket(mysql.AppendEOF(nil, 0, mysql.StatusAutocommit))
	for i := 0; i < rows; i++ {
		row := mysql.AppendLenEncString(nil, fmt.Sprint(i))
		row = mysql.AppendLenEncString(row, "68487932199-96439406143-93774651418-41631865787-96406072701")
		row = mysql.AppendLenEncString(row, "22195207048-70116052123-74140395089-76317954521-98694025897")
		c.WritePacket(row)
	}
	c.WritePacket(mysql.AppendEOF(nil, 0, mysql.StatusAutocommit))
	c.Flush()
	return bc.w.Bytes()
}

func benchSession(stream []byte, clientCaps uint32) *session {
	be := &backend.Conn{Conn: mysql.NewConn(&memConn{data: stream}),
		Info: &mysql.ServerInfo{Capabilities: mysql.BackendCapabilities}}
	s := &session{
		client: mysql.NewConn(&memConn{}),
		be:     be,
		caps:   clientCaps,
		state:  backend.NewSessionState("test"),
	}
	return s
}

// BenchmarkRelayRows measures the streaming path: one result set of 1,000
// rows from backend to client per iteration. Allocations per op are for
// 1,000 rows.
func BenchmarkRelayRows(b *testing.B) {
	const rows = 1000
	stream := encodeResultSet(rows)
	for _, tc := range []struct {
		name string
		caps uint32
	}{{"classicEOF", mysql.ClientProtocol41}, {"deprecateEOF", mysql.ClientProtocol41 | mysql.ClientDeprecateEOF}} {
		b.Run(tc.name, func(b *testing.B) {
			s := benchSession(stream, tc.caps)
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.be.SetSeq(1)
				s.client.SetSeq(1)
				r, err := s.relayResults(false)
				if err != nil || r.rows != rows {
					b.Fatalf("relay: %v rows=%d", err, r.rows)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		})
	}
}

// BenchmarkPointSelect compares a primary-key lookup directly against
// MariaDB and through the proxy (same client, same server), prepared
// statements on.
func BenchmarkPointSelect(b *testing.B) {
	addr := testutil.MariaDBAddr(b)
	setup, err := sql.Open("mysql", "root:@tcp("+addr+")/test")
	if err != nil {
		b.Fatal(err)
	}
	defer setup.Close()
	setup.Exec("CREATE TABLE IF NOT EXISTS bench_point (id INT PRIMARY KEY, k INT, c CHAR(120))")
	setup.Exec("INSERT IGNORE INTO bench_point SELECT seq, seq, REPEAT('c', 120) FROM seq_1_to_1000")

	cfg := baseConfig(addr)
	cfg.ApplyDefaults()
	p := New(slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.NewProxy(nil))
	if err := p.Apply(cfg); err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	proxyAddr := p.Listener("test").Addr().String()
	for _, target := range []struct{ name, dsn string }{
		{"direct", "root:@tcp(" + addr + ")/test"},
		{"proxy", "proxy:proxypass@tcp(" + proxyAddr + ")/test"},
	} {
		b.Run(target.name, func(b *testing.B) {
			db, err := sql.Open("mysql", target.dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			st, err := db.Prepare("SELECT c FROM bench_point WHERE id = ?")
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			var c string
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := st.QueryRow(i%1000 + 1).Scan(&c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
