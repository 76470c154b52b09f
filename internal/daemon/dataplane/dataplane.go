// Package dataplane is pisa-daemon's kernel side: an HTB root qdisc 1: with
// one class 1:<minor> per service on each device (netlink), and an eBPF
// egress classifier (TCX, or clsact + cls_bpf on older kernels) that looks
// the packet's destination (address, port) up in a pinned hash map and sets
// skb->priority to the service's class id. Unmatched traffic is not
// classified and goes through HTB's direct queue, unlimited.
//
// Everything the daemon creates is recorded in a pinned state map under
// the pin directory (default /sys/fs/bpf/pisa-daemon), so a restarted
// daemon adopts it, and Cleanup removes exactly that.
package dataplane

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/database-mesh/pisanix-go/internal/daemon"
)

// AttachMode selects how the classifier is attached.
type AttachMode string

const (
	// AttachAuto uses TCX where the kernel has it (≥ 6.6), else tc.
	AttachAuto AttachMode = "auto"
	// AttachTCX uses a TCX egress link (pinned).
	AttachTCX AttachMode = "tcx"
	// AttachTC uses a clsact qdisc and a cls_bpf egress filter.
	AttachTC AttachMode = "tc"
)

// Options configure a Dataplane.
type Options struct {
	// Devices get the classes and the classifier: the egress device and
	// optionally the bridge device.
	Devices []string
	// BPFFS is where a BPF file system is (or gets) mounted; default
	// /sys/fs/bpf.
	BPFFS string
	// PinDir holds the pinned maps and links; default <BPFFS>/pisa-daemon.
	PinDir string
	// NetNS is the network namespace of the devices; nil means the
	// daemon's own.
	NetNS *netns.NsHandle
	// Attach selects TCX or tc; default AttachAuto.
	Attach AttachMode
	Logger *slog.Logger
}

const (
	rootHandle   = 0x10000 // 1:0
	filterHandle = 1
	filterPrio   = 0xc0de
	minDirectQ   = 1000
)

// Dataplane implements daemon.Dataplane with netlink and eBPF.
type Dataplane struct {
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	h         *netlink.Handle
	endpoints *ebpf.Map
	state     *ebpf.Map
	prog      *ebpf.Program
	links     map[string]link.Link // TCX links by device name
	ready     map[string]int       // devices set up in this process → ifindex
	closed    bool
}

var _ daemon.Dataplane = (*Dataplane)(nil)

// Open mounts bpffs if needed, loads (or adopts) the pinned maps and loads
// the classifier. Devices are set up by the first Sync.
func Open(opts Options) (*Dataplane, error) {
	if opts.BPFFS == "" {
		opts.BPFFS = "/sys/fs/bpf"
	}
	if opts.PinDir == "" {
		opts.PinDir = filepath.Join(opts.BPFFS, "pisa-daemon")
	}
	if opts.Attach == "" {
		opts.Attach = AttachAuto
	}
	switch opts.Attach {
	case AttachAuto, AttachTCX, AttachTC:
	default:
		return nil, fmt.Errorf("unknown attach mode %q (auto, tcx or tc)", opts.Attach)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if len(opts.Devices) == 0 {
		return nil, errors.New("no devices")
	}
	opts.Devices = slices.Compact(slices.Clone(opts.Devices))
	if err := ensureBPFFS(opts.BPFFS); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.PinDir, 0o700); err != nil {
		return nil, err
	}
	if !onBPFFS(filepath.Join(opts.PinDir, "x")) {
		return nil, fmt.Errorf("pin directory %s is not on a BPF file system", opts.PinDir)
	}
	d := &Dataplane{opts: opts, log: opts.Logger.With("component", "dataplane"),
		links: map[string]link.Link{}, ready: map[string]int{}}
	var err error
	if opts.NetNS != nil {
		d.h, err = netlink.NewHandleAt(*opts.NetNS)
	} else {
		d.h, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	if err := d.load(); err != nil {
		d.h.Close()
		return nil, err
	}
	return d, nil
}

func (d *Dataplane) load() error {
	opts := ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: d.opts.PinDir}}
	coll, err := ebpf.NewCollectionWithOptions(collectionSpec(), opts)
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		// A daemon of another version pinned different maps: start over.
		d.log.Warn("pinned maps are incompatible with this version; recreating them (classes created before may be left behind)", "err", err)
		for _, name := range []string{endpointsMapName, stateMapName} {
			_ = os.Remove(filepath.Join(d.opts.PinDir, name))
		}
		coll, err = ebpf.NewCollectionWithOptions(collectionSpec(), opts)
	}
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("load classifier: %+v", ve)
		}
		return fmt.Errorf("load classifier: %w", err)
	}
	d.endpoints = coll.DetachMap(endpointsMapName)
	d.state = coll.DetachMap(stateMapName)
	d.prog = coll.DetachProgram(programName)
	coll.Close()
	return nil
}

// PinDir returns the pin directory.
func (d *Dataplane) PinDir() string { return d.opts.PinDir }

// Inventory returns the owned class minors (from the state map) and the
// minors of other classes under 1: on the devices.
func (d *Dataplane) Inventory() (daemon.Inventory, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return daemon.Inventory{}, errors.New("dataplane closed")
	}
	owned, _, err := readState(d.state)
	if err != nil {
		return daemon.Inventory{}, fmt.Errorf("read state map: %w", err)
	}
	inv := daemon.Inventory{Owned: owned, Foreign: map[uint16]bool{}}
	for _, name := range d.opts.Devices {
		l, err := d.h.LinkByName(name)
		if err != nil {
			continue // reported by Sync
		}
		classes, err := d.h.ClassList(l, 0)
		if err != nil {
			continue
		}
		for _, c := range classes {
			h := c.Attrs().Handle
			if h&0xffff0000 != rootHandle {
				continue
			}
			if m := uint16(h); m != 0 {
				if _, ok := owned[m]; !ok {
					inv.Foreign[m] = true
				}
			}
		}
	}
	return inv, nil
}

// Sync converges devices, classes and endpoint entries to want.
func (d *Dataplane) Sync(want daemon.Desired) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("dataplane closed")
	}
	var errs []error
	owned, devRecs, err := readState(d.state)
	if err != nil {
		return fmt.Errorf("read state map: %w", err)
	}

	// Devices recorded by an earlier run but no longer configured.
	for idx, rec := range devRecs {
		if slices.Contains(d.opts.Devices, rec.name) {
			if l, err := d.h.LinkByName(rec.name); err == nil && l.Attrs().Index == idx {
				continue
			}
		}
		if err := d.cleanupDevice(rec, owned); err != nil {
			errs = append(errs, err)
		}
	}

	// Set up the devices: root HTB, classifier.
	links := map[string]netlink.Link{}
	allDevices := true
	for _, name := range d.opts.Devices {
		l, err := d.ensureDevice(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("device %s: %w", name, err))
			var nf netlink.LinkNotFoundError
			if !errors.As(err, &nf) {
				allDevices = false
			}
			continue
		}
		links[name] = l
	}

	// Record ownership before creating classes, so a crash leaves no
	// class behind that a restart would not know.
	wantMinor := map[uint16]bool{}
	var classes []daemon.DesiredClass
	for _, c := range want.Classes {
		wantMinor[c.Minor] = true
		if k, ok := owned[c.Minor]; !ok || k != c.Key {
			if err := putClassRecord(d.state, c.Minor, c.Key); err != nil {
				errs = append(errs, fmt.Errorf("record class 1:%x: %w", c.Minor, err))
				continue // not created: it would not be known as ours
			}
			owned[c.Minor] = c.Key
		}
		classes = append(classes, c)
	}

	// Create or change classes in place.
	existing := map[string]map[uint16]*netlink.HtbClass{}
	for _, name := range slices.Sorted(maps.Keys(links)) {
		l := links[name]
		cur, err := d.htbClasses(l)
		if err != nil {
			errs = append(errs, fmt.Errorf("device %s: list classes: %w", name, err))
			allDevices = false
			delete(links, name)
			continue
		}
		existing[name] = cur
		for _, c := range classes {
			nc := netlink.NewHtbClass(netlink.ClassAttrs{
				LinkIndex: l.Attrs().Index,
				Parent:    rootHandle,
				Handle:    rootHandle | uint32(c.Minor),
			}, netlink.HtbClassAttrs{Rate: c.Rate, Ceil: c.Ceil})
			if old, ok := cur[c.Minor]; ok && old.Rate == nc.Rate && old.Ceil == nc.Ceil {
				continue
			}
			if err := d.h.ClassReplace(nc); err != nil {
				errs = append(errs, fmt.Errorf("device %s: class 1:%x (%s): %w", name, c.Minor, c.Key, err))
				continue
			}
			d.log.Info("class set", "device", name, "classid", fmt.Sprintf("1:%x", c.Minor), "app", c.Key.App,
				"service", c.Key.Service, "rate", daemon.FormatRate(c.Rate), "ceil", daemon.FormatRate(c.Ceil))
		}
	}

	// Endpoint entries.
	if err := d.syncEndpoints(want.Endpoints); err != nil {
		errs = append(errs, err)
	}

	// Remove owned classes that are no longer wanted.
	var stale []uint16
	for m := range owned {
		if !wantMinor[m] {
			stale = append(stale, m)
		}
	}
	slices.Sort(stale)
	for _, m := range stale {
		removed := allDevices
		for name, l := range links {
			if _, ok := existing[name][m]; !ok {
				continue
			}
			err := d.h.ClassDel(&netlink.HtbClass{ClassAttrs: netlink.ClassAttrs{
				LinkIndex: l.Attrs().Index, Parent: rootHandle, Handle: rootHandle | uint32(m)}})
			if err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("device %s: delete class 1:%x (%s): %w", name, m, owned[m], err))
				removed = false
				continue
			}
			d.log.Info("class removed", "device", name, "classid", fmt.Sprintf("1:%x", m), "app", owned[m].App, "service", owned[m].Service)
		}
		if removed {
			if err := deleteKey(d.state, stateKey(uint32(m))); err != nil {
				errs = append(errs, fmt.Errorf("forget class 1:%x: %w", m, err))
			}
		}
	}
	return errors.Join(errs...)
}

// htbClasses returns the HTB classes 1:<minor> of l by minor.
func (d *Dataplane) htbClasses(l netlink.Link) (map[uint16]*netlink.HtbClass, error) {
	classes, err := d.h.ClassList(l, 0)
	if err != nil {
		return nil, err
	}
	out := map[uint16]*netlink.HtbClass{}
	for _, c := range classes {
		hc, ok := c.(*netlink.HtbClass)
		if !ok || hc.Handle&0xffff0000 != rootHandle || uint16(hc.Handle) == 0 {
			continue
		}
		out[uint16(hc.Handle)] = hc
	}
	return out, nil
}

func (d *Dataplane) syncEndpoints(want map[netip.AddrPort]uint16) error {
	var errs []error
	have := map[netip.AddrPort]uint32{}
	var k []byte
	var v uint32
	var bad [][]byte
	it := d.endpoints.Iterate()
	for it.Next(&k, &v) {
		ap, ok := decodeEndpointKey(k)
		if !ok {
			bad = append(bad, slices.Clone(k))
			continue
		}
		have[ap] = v
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read endpoint map: %w", err)
	}
	for _, k := range bad {
		errs = append(errs, deleteKey(d.endpoints, k))
	}
	for ap, cls := range have {
		if m, ok := want[ap]; !ok || rootHandle|uint32(m) != cls {
			if err := deleteKey(d.endpoints, endpointKey(ap)); err != nil {
				errs = append(errs, fmt.Errorf("delete endpoint %s: %w", ap, err))
			}
		}
	}
	for ap, m := range want {
		cls := rootHandle | uint32(m)
		if have[ap] == cls {
			continue
		}
		if err := d.endpoints.Update(endpointKey(ap), cls, ebpf.UpdateAny); err != nil {
			errs = append(errs, fmt.Errorf("set endpoint %s → 1:%x: %w", ap, m, err))
		}
	}
	return errors.Join(errs...)
}

// Stats returns the counters of the owned classes on the devices.
func (d *Dataplane) Stats() ([]daemon.ClassStats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, nil
	}
	owned, _, err := readState(d.state)
	if err != nil {
		return nil, err
	}
	var out []daemon.ClassStats
	var errs []error
	for _, name := range d.opts.Devices {
		l, err := d.h.LinkByName(name)
		if err != nil {
			continue
		}
		classes, err := d.htbClasses(l)
		if err != nil {
			errs = append(errs, fmt.Errorf("device %s: %w", name, err))
			continue
		}
		for _, m := range slices.Sorted(maps.Keys(classes)) {
			key, ok := owned[m]
			if !ok {
				continue
			}
			s := daemon.ClassStats{Key: key, Minor: m, Device: name}
			if st := classes[m].Statistics; st != nil {
				if st.Basic != nil {
					s.Bytes, s.Packets = st.Basic.Bytes, uint64(st.Basic.Packets)
				}
				if st.Queue != nil {
					s.Drops, s.Overlimits = uint64(st.Queue.Drops), uint64(st.Queue.Overlimits)
				}
			}
			out = append(out, s)
		}
	}
	return out, errors.Join(errs...)
}

// Close releases the daemon's handles and leaves the kernel state in
// place (pinned), for the next start to adopt.
func (d *Dataplane) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	for _, l := range d.links {
		_ = l.Close() // pinned: stays attached
	}
	d.prog.Close()
	d.endpoints.Close()
	d.state.Close()
	d.h.Close()
	return nil
}

// Cleanup removes everything the daemon created (recorded in the state
// map): classifier attachments, classes, root and clsact qdiscs it added,
// pinned maps and links. Then it closes the dataplane.
func (d *Dataplane) Cleanup() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return errors.New("dataplane closed")
	}
	var errs []error
	owned, devRecs, err := readState(d.state)
	if err != nil {
		errs = append(errs, fmt.Errorf("read state map: %w", err))
	}
	for _, rec := range devRecs {
		if err := d.cleanupDevice(rec, owned); err != nil {
			errs = append(errs, err)
		}
	}
	// Configured devices without a record (set up before a crash that lost
	// it): remove the classifier and owned classes.
	for _, name := range d.opts.Devices {
		l, err := d.h.LinkByName(name)
		if err != nil {
			continue
		}
		if _, ok := devRecs[l.Attrs().Index]; ok {
			continue
		}
		if err := d.cleanupDevice(deviceRecord{index: l.Attrs().Index, name: name, flags: flagTCX | flagTCFilter}, owned); err != nil {
			errs = append(errs, err)
		}
	}
	for _, l := range d.links {
		_ = l.Close()
	}
	d.links = map[string]link.Link{}
	for _, m := range []*ebpf.Map{d.endpoints, d.state} {
		if err := m.Unpin(); err != nil {
			errs = append(errs, err)
		}
	}
	d.mu.Unlock()
	if err := d.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := os.Remove(d.opts.PinDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove %s: %w", d.opts.PinDir, err))
	}
	if len(errs) == 0 {
		d.log.Info("removed all QoS classes, classifiers and pinned objects")
	}
	return errors.Join(errs...)
}
