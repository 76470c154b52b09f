// Command clusterdns is the cluster DNS of the one-machine cluster (hack/cluster.sh): what
// CoreDNS's kubernetes plugin does for Services, and nothing else. It watches the Services
// through the API server and answers, over UDP and TCP,
//
//	<service>.<namespace>.svc.<domain>  A     the ClusterIP (IPv4 Services)
//	                                    AAAA  no record (NOERROR, empty answer)
//	any other name in <domain>           NXDOMAIN
//	any name outside <domain>            NXDOMAIN: nothing is forwarded, pods' lookups never
//	                                    leave the machine
//
// Headless Services (ClusterIP None) and pod records are not served (NXDOMAIN): the cluster's
// tests do not use them. The kubelet names this server in every pod's resolv.conf
// (clusterDNS), with the usual search path <namespace>.svc.<domain> svc.<domain> <domain>.
//
//	clusterdns -kubeconfig FILE -listen 10.244.0.1:53 -domain cluster.local
//	clusterdns -listen 10.244.0.1:53 -lookup kubernetes.default.svc.cluster.local   # a check
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

const ttl = 5 // seconds: Services change under the tests

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server")
	listen := flag.String("listen", "10.244.0.1:53", "UDP and TCP address")
	domain := flag.String("domain", "cluster.local", "cluster domain")
	lookup := flag.String("lookup", "", "instead of serving: ask the server at -listen for this name's IPv4 address, print it")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *lookup != "" {
		if err := ask(*listen, *lookup); err != nil {
			fmt.Fprintln(os.Stderr, "clusterdns:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*kubeconfig, *listen, *domain, log); err != nil {
		log.Error("clusterdns", "err", err)
		os.Exit(1)
	}
}

func run(kubeconfig, listen, domain string, log *slog.Logger) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	f := informers.NewSharedInformerFactory(cs, 0)
	s := &server{
		services: f.Core().V1().Services().Lister(),
		suffix:   ".svc." + strings.Trim(strings.ToLower(domain), ".") + ".",
		log:      log,
	}
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), f.Core().V1().Services().Informer().HasSynced) {
		return errors.New("services never synced")
	}
	pc, err := net.ListenPacket("udp", listen)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		pc.Close()
		return err
	}
	go func() {
		<-ctx.Done()
		pc.Close()
		ln.Close()
	}()
	log.Info("serving", "listen", listen, "domain", domain)
	go s.serveTCP(ln)
	s.serveUDP(pc)
	return nil
}

type server struct {
	services listersv1.ServiceLister
	suffix   string // ".svc.cluster.local."
	log      *slog.Logger
}

func (s *server) serveUDP(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("udp read", "err", err)
			}
			return
		}
		out, ok := s.answer(buf[:n], 512)
		if ok {
			if _, err := pc.WriteTo(out, addr); err != nil {
				s.log.Warn("udp write", "to", addr, "err", err)
			}
		}
	}
}

func (s *server) serveTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("tcp accept", "err", err)
			}
			return
		}
		go func() {
			defer c.Close()
			for {
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				msg := make([]byte, int(l[0])<<8|int(l[1]))
				if _, err := io.ReadFull(c, msg); err != nil {
					return
				}
				out, ok := s.answer(msg, 65535)
				if !ok {
					return
				}
				if _, err := c.Write(append([]byte{byte(len(out) >> 8), byte(len(out))}, out...)); err != nil {
					return
				}
			}
		}()
	}
}

// answer builds the response to one query; false when the message is not a query worth an
// answer (unparseable header, or a response).
func (s *server) answer(msg []byte, limit int) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response {
		return nil, false
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, Authoritative: true, RecursionDesired: h.RecursionDesired}
	q, err := p.Question()
	if err != nil || h.OpCode != 0 {
		rh.RCode = dnsmessage.RCodeFormatError
		if h.OpCode != 0 {
			rh.RCode = dnsmessage.RCodeNotImplemented
		}
		b := dnsmessage.NewBuilder(nil, rh)
		out, err := b.Finish()
		return out, err == nil
	}
	ip, found := s.lookup(q.Name.String())
	switch {
	case !found:
		rh.RCode = dnsmessage.RCodeNameError
	case q.Class != dnsmessage.ClassINET && q.Class != dnsmessage.ClassANY:
		rh.RCode = dnsmessage.RCodeRefused
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, false
	}
	if err := b.Question(q); err != nil {
		return nil, false
	}
	if rh.RCode == dnsmessage.RCodeSuccess && (q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeALL) {
		if err := b.StartAnswers(); err != nil {
			return nil, false
		}
		rr := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: ttl}
		if err := b.AResource(rr, dnsmessage.AResource{A: ip.As4()}); err != nil {
			return nil, false
		}
	}
	out, err := b.Finish()
	// One question and at most one compressed A record stay far below UDP's 512 bytes; the
	// check only guards against answering with a message the client cannot take.
	if err != nil || len(out) > limit {
		return nil, false
	}
	return out, true
}

// lookup: the ClusterIP of <service>.<namespace>.svc.<domain>.; found is false for any other
// name (NXDOMAIN), including headless Services.
func (s *server) lookup(name string) (ip netip.Addr, found bool) {
	name = strings.ToLower(name)
	rest, ok := strings.CutSuffix(name, s.suffix)
	if !ok {
		return ip, false
	}
	svc, ns, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(ns, ".") {
		return ip, false
	}
	obj, err := s.services.Services(ns).Get(svc)
	if err != nil {
		return ip, false
	}
	return clusterIPv4(obj)
}

func clusterIPv4(svc *corev1.Service) (netip.Addr, bool) {
	for _, s := range append([]string{svc.Spec.ClusterIP}, svc.Spec.ClusterIPs...) {
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// ask resolves name through the server at addr only, with Go's resolver.
func ask(addr, name string) error {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ips, err := r.LookupNetIP(ctx, "ip4", name)
	if err != nil {
		return err
	}
	for _, ip := range ips {
		fmt.Println(ip)
	}
	return nil
}
