package proxy

import (
	goruntime "runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// A 1 GiB result passes through with bounded proxy memory: rows are
// streamed, never assembled.
func TestGiBResultBoundedMemory(t *testing.T) {
	total := int64(1 << 30)
	if testing.Short() {
		total = 64 << 20
	}
	const rowSize = 4096
	rows := total / rowSize
	tp := defaultProxy(t)
	c := dialRaw(t, tp.addr)

	goruntime.GC()
	var before goruntime.MemStats
	goruntime.ReadMemStats(&before)
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms goruntime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			goruntime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()

	q := "SELECT seq, REPEAT('x', " + itoa(rowSize) + ") FROM seq_1_to_" + itoa(int(rows))
	c.c.ResetSeq()
	if err := c.c.WritePacketFlush(append([]byte{mysql.ComQuery}, q...)); err != nil {
		t.Fatal(err)
	}
	var got, bytes int64
	eofs := 0
	for eofs < 2 {
		p, err := c.c.ReadPacket()
		if err != nil {
			t.Fatal(err)
		}
		if p[0] == mysql.ERRHeader {
			t.Fatal(mysql.ParseErr(p))
		}
		if mysql.IsEOF(p) {
			eofs++
			continue
		}
		if eofs == 1 {
			got++
			bytes += int64(len(p))
		}
	}
	close(stop)
	<-done
	if got != rows {
		t.Fatalf("rows = %d, want %d", got, rows)
	}
	growth := int64(peak.Load()) - int64(before.HeapInuse)
	t.Logf("%d rows, %d MiB through the proxy; heap in use grew by at most %d KiB", got, bytes>>20, growth>>10)
	if growth > 32<<20 {
		t.Fatalf("proxy heap grew by %d MiB while streaming %d MiB", growth>>20, bytes>>20)
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
