package dataplane

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/database-mesh/pisanix-go/internal/daemon"
)

// The state map (pinned next to the endpoint map) records what the daemon
// created, so that a restarted daemon adopts it and cleanup removes
// exactly that:
//
//	key minor (1-0xffff)           → class record: {1, 0, 0, 0, "app/service\0…"}
//	key 1<<31 | ifindex            → device record: {2, flags, 0, 0, "ifname\0…"}
const (
	stateValueSize = 512
	stateCapacity  = 8192

	recClass  = 1
	recDevice = 2

	deviceKeyBit = 1 << 31
)

// Device record flags.
const (
	flagRootCreated   = 1 << iota // the daemon replaced the root qdisc with HTB 1:
	flagClsactCreated             // the daemon added the clsact qdisc
	flagTCFilter                  // classifier attached as a cls_bpf filter on clsact egress
	flagTCX                       // classifier attached with a TCX link
)

type deviceRecord struct {
	index int
	name  string
	flags uint8
}

func encodeRecord(kind, flags uint8, name string) ([]byte, error) {
	if len(name) > stateValueSize-5 {
		return nil, fmt.Errorf("name %q too long for the state map", name)
	}
	v := make([]byte, stateValueSize)
	v[0], v[1] = kind, flags
	copy(v[4:], name)
	return v, nil
}

func decodeRecord(v []byte) (kind, flags uint8, name string) {
	if len(v) < 4 {
		return 0, 0, ""
	}
	n := v[4:]
	if i := bytes.IndexByte(n, 0); i >= 0 {
		n = n[:i]
	}
	return v[0], v[1], string(n)
}

func stateKey(k uint32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, k)
	return b
}

// readState returns the class and device records.
func readState(m *ebpf.Map) (classes map[uint16]daemon.ClassKey, devices map[int]deviceRecord, err error) {
	classes = map[uint16]daemon.ClassKey{}
	devices = map[int]deviceRecord{}
	var k, v []byte
	it := m.Iterate()
	for it.Next(&k, &v) {
		if len(k) != 4 {
			continue
		}
		key := binary.NativeEndian.Uint32(k)
		kind, flags, name := decodeRecord(v)
		switch {
		case kind == recClass && key > 0 && key <= 0xffff:
			if ck, ok := daemon.ParseClassKey(name); ok {
				classes[uint16(key)] = ck
			}
		case kind == recDevice && key&deviceKeyBit != 0:
			idx := int(key &^ deviceKeyBit)
			devices[idx] = deviceRecord{index: idx, name: name, flags: flags}
		}
	}
	return classes, devices, it.Err()
}

func putClassRecord(m *ebpf.Map, minor uint16, key daemon.ClassKey) error {
	v, err := encodeRecord(recClass, 0, key.String())
	if err != nil {
		return err
	}
	return m.Update(stateKey(uint32(minor)), v, ebpf.UpdateAny)
}

func putDeviceRecord(m *ebpf.Map, d deviceRecord) error {
	v, err := encodeRecord(recDevice, d.flags, d.name)
	if err != nil {
		return err
	}
	return m.Update(stateKey(deviceKeyBit|uint32(d.index)), v, ebpf.UpdateAny)
}

func deleteKey(m *ebpf.Map, k []byte) error {
	if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}
