package dataplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/database-mesh/pisanix-go/internal/daemon"
)

func (d *Dataplane) tcxPin(name string) string {
	return filepath.Join(d.opts.PinDir, "tcx_"+name)
}

func (d *Dataplane) deviceRecord(idx int, name string) deviceRecord {
	rec := deviceRecord{index: idx, name: name}
	var v []byte
	if err := d.state.Lookup(stateKey(deviceKeyBit|uint32(idx)), &v); err == nil {
		if kind, flags, n := decodeRecord(v); kind == recDevice && n == name {
			rec.flags = flags
		}
	}
	return rec
}

// ensureDevice makes sure the device has the HTB root qdisc 1: and the
// classifier attached, recording what it creates.
func (d *Dataplane) ensureDevice(name string) (netlink.Link, error) {
	l, err := d.h.LinkByName(name)
	if err != nil {
		return nil, err
	}
	idx := l.Attrs().Index
	rec := d.deviceRecord(idx, name)
	before := rec.flags
	save := func() error {
		if rec.flags == before {
			return nil
		}
		if err := putDeviceRecord(d.state, rec); err != nil {
			return fmt.Errorf("record device: %w", err)
		}
		before = rec.flags
		return nil
	}

	qdiscs, err := d.h.QdiscList(l)
	if err != nil {
		return nil, fmt.Errorf("list qdiscs: %w", err)
	}
	var root netlink.Qdisc
	hasClsact := false
	for _, q := range qdiscs {
		switch {
		case q.Attrs().Parent == netlink.HANDLE_ROOT:
			root = q
		case q.Type() == "clsact":
			hasClsact = true
		}
	}
	if htb, ok := root.(*netlink.Htb); !ok || htb.Handle != rootHandle {
		qlen := uint32(max(l.Attrs().TxQLen, minDirectQ))
		q := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: idx, Handle: rootHandle, Parent: netlink.HANDLE_ROOT})
		q.DirectQlen = &qlen // unmatched traffic: never limited
		// Record first: a crash between the two leaves a record to clean.
		rec.flags |= flagRootCreated
		if err := save(); err != nil {
			return nil, err
		}
		if err := d.h.QdiscReplace(q); err != nil {
			return nil, fmt.Errorf("add root HTB qdisc 1: %w", err)
		}
		old := "none"
		if root != nil {
			old = root.Type()
		}
		d.log.Info("root HTB qdisc 1: added", "device", name, "replaced", old)
	}

	mode := d.opts.Attach
	if mode != AttachTC {
		err := d.attachTCX(name, idx)
		switch {
		case err == nil:
			rec.flags |= flagTCX
			if rec.flags&flagTCFilter != 0 {
				d.detachTC(l, &rec)
			}
		case mode == AttachAuto && errors.Is(err, ebpf.ErrNotSupported):
			d.log.Info("TCX not supported by the kernel; using clsact + cls_bpf", "device", name)
			mode = AttachTC
		default:
			_ = save()
			return nil, fmt.Errorf("attach TCX egress: %w", err)
		}
	}
	if mode == AttachTC {
		if err := d.attachTC(l, hasClsact, &rec, save); err != nil {
			_ = save()
			return nil, err
		}
		if rec.flags&flagTCX != 0 {
			d.detachTCX(name)
			rec.flags &^= flagTCX
		}
	}
	if err := save(); err != nil {
		return nil, err
	}
	d.ready[name] = idx
	return l, nil
}

func (d *Dataplane) attachTCX(name string, idx int) error {
	if l, ok := d.links[name]; ok {
		// Still attached to this device (not detached behind our back,
		// device not recreated)?
		if info, err := l.Info(); err == nil && info.TCX() != nil && int(info.TCX().Ifindex) == idx {
			return nil
		}
		d.log.Warn("TCX link no longer attached; attaching again", "device", name)
		_ = l.Unpin()
		_ = l.Close()
		delete(d.links, name)
	}
	pin := d.tcxPin(name)
	pl, err := link.LoadPinnedLink(pin, nil)
	switch {
	case err == nil:
		info, ierr := pl.Info()
		if ierr == nil && info.TCX() != nil && int(info.TCX().Ifindex) == idx {
			// Adopt the link of an earlier run; run this build's program.
			if err := pl.Update(d.prog); err != nil {
				_ = pl.Close()
				return fmt.Errorf("update pinned link %s: %w", pin, err)
			}
			d.links[name] = pl
			d.log.Info("adopted pinned TCX link", "device", name, "pin", pin)
			return nil
		}
		_ = pl.Unpin()
		_ = pl.Close()
	case !errors.Is(err, os.ErrNotExist):
		d.log.Warn("removing unusable pin", "pin", pin, "err", err)
		_ = os.Remove(pin)
	}
	var nl link.Link
	err = inNetNS(d.opts.NetNS, func() error {
		var err error
		nl, err = link.AttachTCX(link.TCXOptions{
			Interface: idx,
			Program:   d.prog,
			Attach:    ebpf.AttachTCXEgress,
			Anchor:    link.Head(),
		})
		return err
	})
	if err != nil {
		return err
	}
	if err := nl.Pin(pin); err != nil {
		_ = nl.Close()
		return fmt.Errorf("pin link: %w", err)
	}
	d.links[name] = nl
	d.log.Info("classifier attached", "device", name, "mode", "tcx", "pin", pin)
	return nil
}

func (d *Dataplane) detachTCX(name string) {
	if l, ok := d.links[name]; ok {
		_ = l.Unpin()
		_ = l.Close()
		delete(d.links, name)
		return
	}
	if pl, err := link.LoadPinnedLink(d.tcxPin(name), nil); err == nil {
		_ = pl.Unpin()
		_ = pl.Close()
	}
}

func (d *Dataplane) bpfFilter(idx int) *netlink.BpfFilter {
	return &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: idx,
			Parent:    netlink.HANDLE_MIN_EGRESS,
			Handle:    filterHandle,
			Priority:  filterPrio,
			Protocol:  unix.ETH_P_ALL,
		},
		Fd:           d.prog.FD(),
		Name:         programName,
		DirectAction: true,
	}
}

func (d *Dataplane) attachTC(l netlink.Link, hasClsact bool, rec *deviceRecord, save func() error) error {
	idx := l.Attrs().Index
	if !hasClsact {
		rec.flags |= flagClsactCreated
		if err := save(); err != nil {
			return err
		}
		q := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx,
			Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}}
		if err := d.h.QdiscAdd(q); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add clsact qdisc: %w", err)
		}
	}
	if d.ready[l.Attrs().Name] == idx && rec.flags&flagTCFilter != 0 && d.hasFilter(l) {
		return nil
	}
	rec.flags |= flagTCFilter
	if err := save(); err != nil {
		return err
	}
	if err := d.h.FilterReplace(d.bpfFilter(idx)); err != nil {
		return fmt.Errorf("add cls_bpf egress filter: %w", err)
	}
	d.log.Info("classifier attached", "device", l.Attrs().Name, "mode", "tc")
	return nil
}

func (d *Dataplane) hasFilter(l netlink.Link) bool {
	fs, err := d.h.FilterList(l, netlink.HANDLE_MIN_EGRESS)
	if err != nil {
		return false
	}
	for _, f := range fs {
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Priority == filterPrio && bf.Handle == filterHandle {
			return true
		}
	}
	return false
}

func (d *Dataplane) detachTC(l netlink.Link, rec *deviceRecord) error {
	var errs []error
	if err := d.h.FilterDel(d.bpfFilter(l.Attrs().Index)); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		errs = append(errs, fmt.Errorf("delete cls_bpf filter: %w", err))
	}
	rec.flags &^= flagTCFilter
	if rec.flags&flagClsactCreated != 0 {
		q := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index,
			Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}}
		if err := d.h.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("delete clsact qdisc: %w", err))
		}
		rec.flags &^= flagClsactCreated
	}
	return errors.Join(errs...)
}

// cleanupDevice removes what the daemon created on a recorded device and
// forgets the record. A device that is gone took its qdiscs with it.
func (d *Dataplane) cleanupDevice(rec deviceRecord, owned map[uint16]daemon.ClassKey) error {
	var errs []error
	d.detachTCX(rec.name)
	delete(d.ready, rec.name)
	l, err := d.h.LinkByName(rec.name)
	if err == nil && l.Attrs().Index == rec.index {
		if rec.flags&(flagTCFilter|flagClsactCreated) != 0 {
			if err := d.detachTC(l, &rec); err != nil {
				errs = append(errs, err)
			}
		}
		if rec.flags&flagRootCreated != 0 {
			q := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: rec.index, Handle: rootHandle, Parent: netlink.HANDLE_ROOT})
			if err := d.h.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("delete root qdisc: %w", err))
			}
		} else if classes, err := d.htbClasses(l); err == nil {
			for m := range classes {
				if _, ok := owned[m]; !ok {
					continue
				}
				err := d.h.ClassDel(&netlink.HtbClass{ClassAttrs: netlink.ClassAttrs{
					LinkIndex: rec.index, Parent: rootHandle, Handle: rootHandle | uint32(m)}})
				if err != nil && !errors.Is(err, unix.ENOENT) {
					errs = append(errs, fmt.Errorf("delete class 1:%x: %w", m, err))
				}
			}
		} else {
			errs = append(errs, fmt.Errorf("list classes: %w", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("clean up device %s: %w", rec.name, errors.Join(errs...))
	}
	d.log.Info("device cleaned up", "device", rec.name)
	return deleteKey(d.state, stateKey(deviceKeyBit|uint32(rec.index)))
}
