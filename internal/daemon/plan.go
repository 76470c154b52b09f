package daemon

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/database-mesh/pisanix-go/internal/daemonconfig"
)

// ClassKey names a service's class: VirtualDatabase (app) and service.
type ClassKey struct {
	App     string `json:"app"`
	Service string `json:"service"`
}

func (k ClassKey) String() string { return k.App + "/" + k.Service }

func (k ClassKey) compare(o ClassKey) int {
	return cmp.Or(cmp.Compare(k.App, o.App), cmp.Compare(k.Service, o.Service))
}

// ParseClassKey is the inverse of ClassKey.String.
func ParseClassKey(s string) (ClassKey, bool) {
	app, svc, ok := strings.Cut(s, "/")
	if !ok || app == "" || svc == "" {
		return ClassKey{}, false
	}
	return ClassKey{App: app, Service: svc}, true
}

// ClassPlan is one HTB class the configuration asks for.
type ClassPlan struct {
	Key ClassKey
	// Rate and Ceil are bits per second; Ceil ≥ Rate.
	Rate, Ceil uint64
	// Endpoints are the resolved destinations classified into the class,
	// sorted and unique. IPv4-mapped IPv6 addresses are unmapped.
	Endpoints []netip.AddrPort
}

// Problem is a part of the configuration that was skipped.
type Problem struct {
	App, Service string
	// Endpoint is the endpoint concerned, or "" for the whole service.
	Endpoint string
	// Reason is a short machine-readable kind: invalid_rate,
	// invalid_endpoint, resolve, duplicate, conflict, no_class_id.
	Reason string
	Err    error
}

func (p Problem) Error() string {
	where := "app " + strconv.Quote(p.App)
	if p.Service != "" {
		where += " service " + strconv.Quote(p.Service)
	}
	if p.Endpoint != "" {
		where += " endpoint " + strconv.Quote(p.Endpoint)
	}
	return where + ": " + p.Err.Error()
}

// Resolver resolves host names; *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// BuildPlan turns a configuration into the classes to create, sorted by
// key. Services without a qos_group rate get no class (as in Pisanix).
// Invalid rates, invalid or unresolvable endpoints, duplicate services and
// endpoints claimed by two services are returned as problems and skipped;
// the rest of the configuration still applies. An endpoint claimed twice
// stays with the first service in sorted order.
func BuildPlan(ctx context.Context, cfg *daemonconfig.Config, res Resolver) ([]ClassPlan, []Problem) {
	if cfg == nil {
		return nil, nil
	}
	var plans []ClassPlan
	var problems []Problem
	seen := map[ClassKey]bool{}
	for _, app := range sortedApps(cfg.App) {
		if !validName(app.Name) {
			problems = append(problems, Problem{App: app.Name, Reason: "invalid_name", Err: errInvalidName})
			continue
		}
		for _, svc := range sortedServices(app.Service) {
			key := ClassKey{App: app.Name, Service: svc.Name}
			bad := func(reason string, err error) {
				problems = append(problems, Problem{App: app.Name, Service: svc.Name, Reason: reason, Err: err})
			}
			if !validName(svc.Name) {
				bad("invalid_name", errInvalidName)
				continue
			}
			if seen[key] {
				bad("duplicate", fmt.Errorf("duplicate service; the first one is used"))
				continue
			}
			seen[key] = true
			if svc.QoSGroup == nil || strings.TrimSpace(svc.QoSGroup.Rate) == "" {
				continue // no QoS claim: no class
			}
			rate, ceil, err := parseRates(svc.QoSGroup)
			if err != nil {
				bad("invalid_rate", err)
				continue
			}
			p := ClassPlan{Key: key, Rate: rate, Ceil: ceil}
			for _, ep := range svc.Endpoints {
				addrs, err := resolveEndpoint(ctx, res, ep)
				if err != nil {
					reason := "invalid_endpoint"
					if re, ok := err.(resolveError); ok {
						reason, err = "resolve", re.err
					}
					problems = append(problems, Problem{App: app.Name, Service: svc.Name,
						Endpoint: net2str(ep), Reason: reason, Err: err})
					if len(addrs) == 0 {
						continue
					}
				}
				p.Endpoints = append(p.Endpoints, addrs...)
			}
			slices.SortFunc(p.Endpoints, netip.AddrPort.Compare)
			p.Endpoints = slices.Compact(p.Endpoints)
			plans = append(plans, p)
		}
	}
	// An endpoint belongs to one class only.
	owner := map[netip.AddrPort]ClassKey{}
	for i := range plans {
		p := &plans[i]
		kept := p.Endpoints[:0]
		for _, ap := range p.Endpoints {
			if first, ok := owner[ap]; ok {
				problems = append(problems, Problem{App: p.Key.App, Service: p.Key.Service, Endpoint: ap.String(),
					Reason: "conflict", Err: fmt.Errorf("endpoint already classified into %s", first)})
				continue
			}
			owner[ap] = p.Key
			kept = append(kept, ap)
		}
		p.Endpoints = kept
	}
	return plans, problems
}

// MaxNameLen bounds app and service names (Kubernetes object names).
const MaxNameLen = 253

var errInvalidName = fmt.Errorf("name must be 1-%d bytes without '/'", MaxNameLen)

func validName(s string) bool {
	return s != "" && len(s) <= MaxNameLen && !strings.Contains(s, "/")
}

func net2str(ep daemonconfig.Endpoint) string {
	return netJoin(ep.IP, ep.Port)
}

func netJoin(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

func parseRates(q *daemonconfig.QoSGroup) (rate, ceil uint64, err error) {
	rate, err = ParseRate(q.Rate)
	if err != nil {
		return 0, 0, fmt.Errorf("rate: %w", err)
	}
	ceil = rate
	if strings.TrimSpace(q.Ceil) != "" {
		ceil, err = ParseRate(q.Ceil)
		if err != nil {
			return 0, 0, fmt.Errorf("ceil: %w", err)
		}
		if ceil < rate {
			return 0, 0, fmt.Errorf("ceil %s (%s) is below rate %s (%s)", q.Ceil, FormatRate(ceil), q.Rate, FormatRate(rate))
		}
	}
	return rate, ceil, nil
}

type resolveError struct{ err error }

func (e resolveError) Error() string { return e.err.Error() }

// resolveEndpoint returns the endpoint's addresses. IP literals need no
// resolver; host names are looked up (A and AAAA).
func resolveEndpoint(ctx context.Context, res Resolver, ep daemonconfig.Endpoint) ([]netip.AddrPort, error) {
	if ep.Port <= 0 || ep.Port > 65535 {
		return nil, fmt.Errorf("port %d out of range 1-65535", ep.Port)
	}
	host := strings.TrimSpace(ep.IP)
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return nil, fmt.Errorf("empty ip")
	}
	port := uint16(ep.Port)
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return nil, fmt.Errorf("zoned IPv6 addresses are not supported")
		}
		return []netip.AddrPort{netip.AddrPortFrom(a.Unmap(), port)}, nil
	}
	if !validHostname(host) {
		return nil, fmt.Errorf("%q is neither an IP address nor a host name", host)
	}
	if res == nil {
		return nil, resolveError{fmt.Errorf("no resolver for host name %q", host)}
	}
	addrs, err := res.LookupNetIP(ctx, "ip", host)
	var out []netip.AddrPort
	for _, a := range addrs {
		if a.Zone() != "" {
			continue
		}
		out = append(out, netip.AddrPortFrom(a.Unmap(), port))
	}
	if err != nil {
		return out, resolveError{fmt.Errorf("resolve %q: %w", host, err)}
	}
	if len(out) == 0 {
		return nil, resolveError{fmt.Errorf("resolve %q: no addresses", host)}
	}
	return out, nil
}

func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func sortedApps(apps []daemonconfig.App) []daemonconfig.App {
	out := slices.Clone(apps)
	slices.SortStableFunc(out, func(a, b daemonconfig.App) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func sortedServices(svcs []daemonconfig.Service) []daemonconfig.Service {
	out := slices.Clone(svcs)
	slices.SortStableFunc(out, func(a, b daemonconfig.Service) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Class minor ids: 1:<minor>. 0 is the qdisc itself and 1 is left free;
// 0xfffe and 0xffff are left to the administrator.
const (
	MinMinor uint16 = 2
	MaxMinor uint16 = 0xfffd
)

// PreferredMinor is the class minor a service gets when it is free: a hash
// of its key, so ids stay the same across restarts and on every node.
func PreferredMinor(k ClassKey) uint16 {
	h := fnv.New32a()
	h.Write([]byte(k.App))
	h.Write([]byte{0})
	h.Write([]byte(k.Service))
	n := uint32(MaxMinor-MinMinor) + 1
	return MinMinor + uint16(h.Sum32()%n)
}

// AllocateMinors gives each key a class minor. Keys that own a minor keep
// it. New keys, in sorted order, take their preferred minor or the next
// free one (wrapping); minors owned by other keys or in use by classes the
// daemon does not own (foreign) are never taken. Keys that find no free
// minor are left out of the result.
func AllocateMinors(keys []ClassKey, owned map[uint16]ClassKey, foreign map[uint16]bool) map[ClassKey]uint16 {
	out := make(map[ClassKey]uint16, len(keys))
	used := make(map[uint16]bool, len(owned)+len(foreign)+len(keys))
	byKey := make(map[ClassKey]uint16, len(owned))
	for m, k := range owned {
		used[m] = true
		if prev, ok := byKey[k]; !ok || m < prev {
			byKey[k] = m
		}
	}
	for m := range foreign {
		used[m] = true
	}
	sorted := slices.Clone(keys)
	slices.SortFunc(sorted, ClassKey.compare)
	sorted = slices.Compact(sorted)
	var fresh []ClassKey
	for _, k := range sorted {
		if m, ok := byKey[k]; ok {
			out[k] = m
			continue
		}
		fresh = append(fresh, k)
	}
	span := int(MaxMinor-MinMinor) + 1
	for _, k := range fresh {
		start := int(PreferredMinor(k) - MinMinor)
		for i := 0; i < span; i++ {
			m := MinMinor + uint16((start+i)%span)
			if !used[m] {
				used[m] = true
				out[k] = m
				break
			}
		}
	}
	return out
}
