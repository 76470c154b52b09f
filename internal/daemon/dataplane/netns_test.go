package dataplane

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Test network: two anonymous namespaces joined by a veth pair. The
// sender's end (sendDev) is where the daemon shapes egress traffic.
const (
	sendDev  = "pisa-t0"
	recvDev  = "pisa-t1"
	sendAddr = "10.231.0.1/30"
	recvAddr = "10.231.0.2/30"
	recvIP   = "10.231.0.2"
)

// Capabilities in CapEff.
const (
	capNetAdmin = 12
	capSysAdmin = 21
	capBPF      = 39
)

// requirePrivileges skips the test unless the process has CAP_NET_ADMIN,
// CAP_SYS_ADMIN and CAP_BPF.
func requirePrivileges(t *testing.T) {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("skipping privileged test: cannot read capabilities: %v", err)
	}
	defer f.Close()
	var eff uint64
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			eff, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	var missing []string
	for _, c := range []struct {
		bit  uint
		name string
	}{{capNetAdmin, "CAP_NET_ADMIN"}, {capSysAdmin, "CAP_SYS_ADMIN"}, {capBPF, "CAP_BPF"}} {
		if eff&(1<<c.bit) == 0 {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		t.Skipf("skipping privileged test: needs %s (CapEff %#x); run as root to create network namespaces, HTB classes and eBPF programs",
			strings.Join(missing, " + "), eff)
	}
}

type testNet struct {
	send, recv netns.NsHandle
}

// newTestNet creates the two namespaces and the veth pair; closing the
// namespace handles at cleanup destroys everything.
func newTestNet(t *testing.T) *testNet {
	t.Helper()
	requirePrivileges(t)
	tn := &testNet{}
	err := func() error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		defer netns.Set(orig)
		if tn.send, err = netns.New(); err != nil {
			return fmt.Errorf("new netns: %w", err)
		}
		if tn.recv, err = netns.New(); err != nil {
			tn.send.Close()
			return fmt.Errorf("new netns: %w", err)
		}
		return nil
	}()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tn.send.Close()
		tn.recv.Close()
	})
	hs := tn.handle(t, tn.send)
	hr := tn.handle(t, tn.recv)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: sendDev, TxQLen: 1000}, PeerName: recvDev,
		PeerNamespace: netlink.NsFd(int(tn.recv))}
	if err := hs.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	for _, x := range []struct {
		h    *netlink.Handle
		dev  string
		addr string
	}{{hs, sendDev, sendAddr}, {hr, recvDev, recvAddr}} {
		l, err := x.h.LinkByName(x.dev)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := netlink.ParseAddr(x.addr)
		if err := x.h.AddrAdd(l, a); err != nil {
			t.Fatalf("add %s: %v", x.addr, err)
		}
		if err := x.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		if lo, err := x.h.LinkByName("lo"); err == nil {
			_ = x.h.LinkSetUp(lo)
		}
	}
	return tn
}

func (tn *testNet) handle(t *testing.T, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// linkLocal waits for the kernel-assigned IPv6 link-local address of dev
// in ns to leave DAD and returns it.
func (tn *testNet) linkLocal(t *testing.T, ns netns.NsHandle, dev string) netip.Addr {
	t.Helper()
	h := tn.handle(t, ns)
	l, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		addrs, _ := h.AddrList(l, netlink.FAMILY_V6)
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if ok && ip.IsLinkLocalUnicast() && a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0 {
				return ip
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Skipf("no IPv6 link-local address on %s (IPv6 disabled?)", dev)
	return netip.Addr{}
}

// inNS runs fn on a thread switched into ns.
func inNS(t *testing.T, ns netns.NsHandle, fn func() error) {
	t.Helper()
	if err := inNetNS(&ns, fn); err != nil {
		t.Fatal(err)
	}
}

// warmUp is skipped after the first byte before counting.
const warmUp = 250 * time.Millisecond

// measure sends as fast as possible from the sender namespace to addr in
// the receiver namespace and returns the received rate in bits/s over d,
// counted from warmUp after the first byte.
func (tn *testNet) measure(t *testing.T, addr netip.AddrPort, linkLocal bool, d time.Duration) float64 {
	t.Helper()
	var ln net.Listener
	inNS(t, tn.recv, func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(addr.Addr().String()+zoneSuffix(linkLocal, recvDev), strconv.Itoa(int(addr.Port()))))
		return err
	})
	defer ln.Close()
	var conn net.Conn
	inNS(t, tn.send, func() error {
		var err error
		dialer := net.Dialer{Timeout: 3 * time.Second}
		conn, err = dialer.Dial("tcp", net.JoinHostPort(addr.Addr().String()+zoneSuffix(linkLocal, sendDev), strconv.Itoa(int(addr.Port()))))
		return err
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		buf := make([]byte, 64<<10)
		for ctx.Err() == nil {
			if _, err := conn.Write(buf); err != nil {
				return
			}
		}
	}()
	defer conn.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	buf := make([]byte, 256<<10)
	if _, err := io.ReadFull(srv, buf[:1]); err != nil {
		t.Fatal(err)
	}
	// Warm-up: discard what queued in the receive buffer before the
	// receiver got to run (on a loaded machine it inflates the rate) and
	// the first burst.
	warm := time.Now().Add(warmUp)
	_ = srv.SetReadDeadline(warm)
	for {
		if _, err := srv.Read(buf); err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("receive: %v", err)
			}
			break
		}
	}
	var n int64
	end := time.Now().Add(d)
	_ = srv.SetReadDeadline(end)
	for {
		m, err := srv.Read(buf)
		n += int64(m)
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("receive: %v", err)
			}
			break
		}
	}
	return float64(n) * 8 / d.Seconds()
}

func zoneSuffix(linkLocal bool, dev string) string {
	if !linkLocal {
		return ""
	}
	return "%" + dev
}
