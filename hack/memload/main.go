// Command memload measures pisa-proxy's peak memory (VmHWM) under large
// packets: it builds and starts a proxy in front of a MariaDB, then either
// has N logged-in clients send M MiB queries at once (-mode query), or N
// strangers send M MiB handshake packets (-mode preauth), and prints the
// proxy's RSS before and its peak after.
//
//	go run ./hack/memload -mode query -n 8 -mib 8
//	go run ./hack/memload -mode query -n 1 -mib 64 -max-allowed-packet 128 -backend-can-fail
//	go run ./hack/memload -mode preauth -n 2 -mib 128
//	go run ./hack/memload -mode query -n 32 -mib 8 -max-packet-memory 64
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

func status(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key+":") {
			f := strings.Fields(strings.TrimPrefix(l, key+":"))
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			return kb * 1024
		}
	}
	return -1
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func main() {
	mode := flag.String("mode", "query", "query: logged-in clients send queries; preauth: strangers send handshake packets")
	n := flag.Int("n", 8, "clients")
	size := flag.Int("mib", 8, "MiB per packet")
	rounds := flag.Int("rounds", 3, "queries per client (query mode)")
	backend := flag.String("backend", "127.0.0.1:3306", "MariaDB (root, no password)")
	maxPacket := flag.Int("max-allowed-packet", 16, "listener max_allowed_packet, MiB")
	maxMem := flag.Int("max-packet-memory", 256, "proxy.max_packet_memory, MiB")
	canFail := flag.Bool("backend-can-fail", false, "count backend errors (e.g. its own 16 MiB max_allowed_packet) as expected")
	hold := flag.Duration("hold", 0, "keep the proxy running this long after the run (to profile it)")
	plain := flag.Bool("plain", false, "leave out the limit keys (to measure a proxy built before they existed)")
	flag.Parse()

	dir, err := os.MkdirTemp("", "memload")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "pisa-proxy")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/pisa-proxy").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	port, adminPort := freePort(), freePort()
	host, bport, _ := net.SplitHostPort(*backend)
	cfg := fmt.Sprintf(`[admin]
port = %d
log_level = "ERROR"
[proxy]
max_packet_memory = %d
[[proxy.config]]
name = "memload"
listen_addr = "127.0.0.1:%d"
user = "u"
password = "p"
db = "test"
max_allowed_packet = %d
[[mysql.node]]
name = "db"
host = %q
port = %s
user = "root"
db = "test"
`, adminPort, *maxMem<<20, port, *maxPacket<<20, host, bport)
	if *plain {
		var keep []string
		for _, l := range strings.Split(cfg, "\n") {
			if !strings.HasPrefix(l, "max_") && l != "[proxy]" {
				keep = append(keep, l)
			}
		}
		cfg = strings.Join(keep, "\n")
	}
	cfgPath := filepath.Join(dir, "proxy.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		panic(err)
	}
	cmd := exec.Command(bin, "daemon", "-c", cfgPath)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i > 100 {
			fmt.Fprintln(os.Stderr, "proxy did not start")
			os.Exit(1)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	before := status(pid, "VmRSS")

	var mu sync.Mutex
	outcomes := map[string]int{}
	count := func(k string) { mu.Lock(); outcomes[k]++; mu.Unlock() }
	var wg sync.WaitGroup
	start := time.Now()
	payload := int64(*size) << 20
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if *mode == "preauth" {
				count(preauth(addr, payload))
				return
			}
			query(addr, payload, *rounds, *canFail, count)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	time.Sleep(200 * time.Millisecond)
	fmt.Printf("mode=%s clients=%d packet=%d MiB rounds=%d max_allowed_packet=%d MiB max_packet_memory=%d MiB\n",
		*mode, *n, *size, *rounds, *maxPacket, *maxMem)
	fmt.Printf("proxy RSS before %s, peak (VmHWM) %s, after %s; %v\n",
		mib(before), mib(status(pid, "VmHWM")), mib(status(pid, "VmRSS")), elapsed.Round(time.Millisecond))
	fmt.Printf("outcomes: %v\n", outcomes)
	time.Sleep(*hold)
}

// preauth sends a handshake "packet" of size bytes (as 16 MiB physical
// packets) without logging in, and reports what the proxy answered.
func preauth(addr string, size int64) string {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
	c := mysql.NewConn(nc)
	if _, err := c.ReadPacket(); err != nil {
		return "greeting: " + err.Error()
	}
	chunk := make([]byte, 1<<20)
	seq := byte(1)
	for sent := int64(0); sent < size; {
		n := min(size-sent, mysql.MaxPayload)
		h := []byte{byte(n), byte(n >> 8), byte(n >> 16), seq}
		seq++
		if _, err := nc.Write(h); err != nil {
			return "cut off while sending"
		}
		for k := int64(0); k < n; {
			m := min(n-k, int64(len(chunk)))
			if _, err := nc.Write(chunk[:m]); err != nil {
				return "cut off while sending"
			}
			k += m
		}
		sent += n
	}
	return "sent whole"
}

// query logs in and runs SELECT LENGTH('xxx…') of size bytes rounds times.
func query(addr string, size int64, rounds int, canFail bool, count func(string)) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		count("dial failed")
		return
	}
	defer nc.Close()
	c := mysql.NewConn(nc)
	if _, err := mysql.ClientHandshake(c, &mysql.ClientConfig{User: "u", Password: "p", DB: "test"}); err != nil {
		count("login failed: " + err.Error())
		return
	}
	pre, post := "SELECT LENGTH('", "')"
	q := make([]byte, 0, size)
	q = append(q, mysql.ComQuery)
	q = append(q, pre...)
	q = append(q, bytes.Repeat([]byte{'x'}, int(size)-len(pre)-len(post)-1)...)
	q = append(q, post...)
	for r := 0; r < rounds; r++ {
		c.ResetSeq()
		if err := c.WritePacketFlush(q); err != nil {
			count("write failed")
			return
		}
		p, err := c.ReadPacket()
		if err != nil {
			count("read failed")
			return
		}
		if p[0] == mysql.ERRHeader {
			e := mysql.ParseErr(p)
			count(fmt.Sprintf("ERR %d", e.Code))
			if e.Code == 1153 || !canFail {
				return
			}
			continue
		}
		for { // column def, EOF, row, EOF
			p, err = c.ReadPacket()
			if err != nil {
				count("read failed")
				return
			}
			if p[0] == mysql.EOFHeader && len(p) < 9 {
				break
			}
		}
		p, _ = c.ReadPacket()
		want := strconv.FormatInt(size-int64(len(pre)+len(post)+1), 10)
		if !bytes.Contains(p, []byte(want)) {
			count("wrong result")
		} else {
			count("ok")
		}
		for p[0] != mysql.EOFHeader {
			if p, err = c.ReadPacket(); err != nil {
				count("read failed")
				return
			}
		}
	}
}
