package proxy

import (
	"net"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// rawClient speaks the protocol directly, for commands database/sql cannot
// send.
type rawClient struct {
	c  *mysql.Conn
	si *mysql.ServerInfo
}

func dialRawCaps(t testing.TB, addr string, caps uint32) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := mysql.NewConn(nc)
	si, err := mysql.ClientHandshake(c, &mysql.ClientConfig{User: "proxy", Password: "proxypass", DB: "test", Capabilities: caps})
	if err != nil {
		nc.Close()
		t.Fatalf("raw handshake: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{c: c, si: si}
}

func dialRaw(t testing.TB, addr string) *rawClient { return dialRawCaps(t, addr, 0) }

// command sends one command and returns the first response packet.
func (r *rawClient) command(t testing.TB, p []byte) []byte {
	t.Helper()
	r.c.ResetSeq()
	if err := r.c.WritePacketFlush(p); err != nil {
		t.Fatal(err)
	}
	resp, err := r.c.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), resp...)
}

// readAll reads packets until an OK/ERR/EOF packet that ends a response
// without more results, returning them all.
func (r *rawClient) readUntilEnd(t testing.TB, first []byte, deprecateEOF bool) [][]byte {
	t.Helper()
	out := [][]byte{first}
	if first[0] == 0 || first[0] == 0xff {
		return out
	}
	eofs := 0
	for {
		p, err := r.c.ReadPacket()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte(nil), p...))
		if p[0] == 0xff {
			return out
		}
		if p[0] == 0xfe && len(p) < 0xffffff && (len(p) < 9 || deprecateEOF) {
			eofs++
			if deprecateEOF || eofs == 2 {
				return out
			}
		}
	}
}
