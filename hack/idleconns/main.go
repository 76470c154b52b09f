// Command idleconns opens N authenticated, idle MySQL connections to an
// address and holds them, printing the target process's RSS: a check of the
// "10,000 idle client connections" memory bar.
//
//	go run ./hack/idleconns -addr 127.0.0.1:13308 -n 10000 -pid $(pgrep pisa-proxy)
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

func rss(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	return "?"
}

func main() {
	addr := flag.String("addr", "127.0.0.1:3307", "proxy address")
	n := flag.Int("n", 10000, "connections")
	user := flag.String("user", "root", "user")
	pass := flag.String("password", "", "password")
	pid := flag.Int("pid", 0, "proxy pid (for RSS)")
	hold := flag.Duration("hold", 2*time.Second, "how long to hold the connections")
	flag.Parse()
	fmt.Printf("before: RSS %s\n", rss(*pid))
	conns := make([]net.Conn, 0, *n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	failed := 0
	for i := 0; i < *n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			nc, err := net.Dial("tcp", *addr)
			if err == nil {
				_, err = mysql.ClientHandshake(mysql.NewConn(nc), &mysql.ClientConfig{User: *user, Password: *pass})
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			conns = append(conns, nc)
		}()
	}
	wg.Wait()
	time.Sleep(*hold)
	fmt.Printf("%d idle connections (%d failed): RSS %s\n", len(conns), failed, rss(*pid))
	for _, c := range conns {
		c.Close()
	}
}
