package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// TestServe answers through Go's resolver over UDP and TCP, from Services in a lister.
func TestServe(t *testing.T) {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, s := range []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "pisanix", Namespace: "pisa-system"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.42"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "headless", Namespace: "pisa-system"}, Spec: corev1.ServiceSpec{ClusterIP: "None"}},
	} {
		if err := idx.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	s := &server{services: listersv1.NewServiceLister(idx), suffix: ".svc.cluster.local.", log: slog.Default()}
	// One port for UDP and TCP: the UDP port the kernel picks may be taken
	// for TCP by another program, so pick again then.
	var (
		pc   net.PacketConn
		ln   net.Listener
		addr string
	)
	for attempt := 0; ; attempt++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		addr = pc.LocalAddr().String()
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		pc.Close()
		if attempt == 50 {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	go s.serveUDP(pc)
	go s.serveTCP(ln)

	for _, network := range []string{"udp", "tcp"} {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ips, err := r.LookupNetIP(ctx, "ip4", "PisaNix.pisa-system.svc.cluster.local")
		if err != nil || len(ips) != 1 || ips[0].String() != "10.96.0.42" {
			t.Errorf("%s: pisanix.pisa-system: %v %v", network, ips, err)
		}
		// Both families asked: the A record, no AAAA, no error.
		if ips, err := r.LookupNetIP(ctx, "ip", "pisanix.pisa-system.svc.cluster.local."); err != nil || len(ips) != 1 {
			t.Errorf("%s: A+AAAA: %v %v", network, ips, err)
		}
		for _, name := range []string{"headless.pisa-system.svc.cluster.local", "nothing.pisa-system.svc.cluster.local",
			"pisanix.pisa-system.svc.other.local", "pisanix.svc.cluster.local", "example.com"} {
			_, err := r.LookupNetIP(ctx, "ip4", name)
			var de *net.DNSError
			if !errors.As(err, &de) || !de.IsNotFound {
				t.Errorf("%s: %s: want not found, got %v", network, name, err)
			}
		}
		cancel()
	}
}
