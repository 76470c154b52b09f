package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf/asm"
)

func TestEndpointKey(t *testing.T) {
	for _, s := range []string{"10.231.0.2:3306", "[fd00::1]:5432", "[fe80::1]:1", "0.0.0.0:65535"} {
		ap := netip.MustParseAddrPort(s)
		k := endpointKey(ap)
		if len(k) != endpointKeySize {
			t.Fatalf("key size %d", len(k))
		}
		got, ok := decodeEndpointKey(k)
		if !ok || got != ap {
			t.Errorf("round trip %s → %v (%v)", s, got, ok)
		}
	}
	// Layout the program builds: family, pad, port (network order), address.
	k := endpointKey(netip.MustParseAddrPort("10.231.0.2:3306"))
	want := []byte{4, 0, 0x0c, 0xea, 10, 231, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if !bytes.Equal(k, want) {
		t.Errorf("key % x, want % x", k, want)
	}
	// IPv4-mapped addresses are keyed as IPv4 (that is what the packet has).
	if m := endpointKey(netip.MustParseAddrPort("[::ffff:10.231.0.2]:3306")); !bytes.Equal(m, want) {
		t.Errorf("mapped key % x", m)
	}
	if _, ok := decodeEndpointKey([]byte{9, 0, 0, 0}); ok {
		t.Error("bad key decoded")
	}
	if _, ok := decodeEndpointKey(make([]byte, endpointKeySize)); ok {
		t.Error("family 0 decoded")
	}
}

func TestStateRecords(t *testing.T) {
	v, err := encodeRecord(recDevice, flagRootCreated|flagTCX, "eth0")
	if err != nil || len(v) != stateValueSize {
		t.Fatal(err)
	}
	kind, flags, name := decodeRecord(v)
	if kind != recDevice || flags != flagRootCreated|flagTCX || name != "eth0" {
		t.Errorf("decoded %d %d %q", kind, flags, name)
	}
	if _, err := encodeRecord(recClass, 0, string(make([]byte, stateValueSize))); err == nil {
		t.Error("too long name accepted")
	}
	if binary.NativeEndian.Uint32(stateKey(deviceKeyBit|7)) != deviceKeyBit|7 {
		t.Error("state key")
	}
}

// The classifier assembles (jumps resolve) and references the endpoint map.
func TestClassifierAssembles(t *testing.T) {
	insns := classifyInstructions()
	var buf bytes.Buffer
	if err := insns.Marshal(&buf, binary.LittleEndian); err != nil {
		t.Fatalf("marshal: %v", err)
	}
	refs := 0
	for _, ins := range insns {
		if ins.Reference() == endpointsMapName {
			refs++
		}
	}
	if refs != 1 {
		t.Errorf("%d references to the endpoint map", refs)
	}
	last := insns[len(insns)-1]
	if last.OpCode.JumpOp() != asm.Exit {
		t.Errorf("last instruction %v", last)
	}
	spec := collectionSpec()
	if spec.Maps[endpointsMapName].KeySize != endpointKeySize || spec.Programs[programName] == nil {
		t.Error("collection spec")
	}
}
