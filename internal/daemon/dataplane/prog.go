package dataplane

import (
	"encoding/binary"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Names of the pinned objects under the pin directory. Kernel object names
// are limited to 15 characters.
const (
	endpointsMapName = "pisa_endpoints"
	stateMapName     = "pisa_state"
	programName      = "pisa_classify"
)

// Endpoint map: key {u8 family (4|6), u8 pad, be16 port, [16]u8 ip} (IPv4
// in the first 4 bytes of ip, the rest zero) → u32 HTB class id 1:<minor>.
const (
	endpointKeySize   = 20
	endpointsCapacity = 16384
)

func endpointKey(ap netip.AddrPort) []byte {
	k := make([]byte, endpointKeySize)
	a := ap.Addr().Unmap()
	if a.Is4() {
		k[0] = 4
		b := a.As4()
		copy(k[4:], b[:])
	} else {
		k[0] = 6
		b := a.As16()
		copy(k[4:], b[:])
	}
	binary.BigEndian.PutUint16(k[2:4], ap.Port())
	return k
}

func decodeEndpointKey(k []byte) (netip.AddrPort, bool) {
	if len(k) != endpointKeySize {
		return netip.AddrPort{}, false
	}
	port := binary.BigEndian.Uint16(k[2:4])
	switch k[0] {
	case 4:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(k[4:8])), port), true
	case 6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(k[4:20])), port), true
	}
	return netip.AddrPort{}, false
}

// Offsets in struct __sk_buff.
const (
	skbProtocol = 16
	skbPriority = 32
)

// Constants the program compares against, as the kernel stores them.
const (
	ethPIPv4LE     = 0x0008 // htons(ETH_P_IP) read as a little-endian u32
	ethPIPv6LE     = 0xdd86 // htons(ETH_P_IPV6)
	ipprotoTCP     = 6
	bpfHdrStartNet = 1
	tcActUnspec    = -1 // TC_ACT_UNSPEC == TCX_NEXT: continue, never drop
)

// Stack layout (offsets from r10).
const (
	keyOff = -24 // 20-byte endpoint key at [-24, -4)
	hdrOff = -64 // 40-byte copy of the IP header at [-64, -24)
)

// classifyInstructions is the egress classifier. For TCP over IPv4 or
// IPv6 it looks up (destination address, destination port) in the
// endpoint map and, on a hit, sets skb->priority to the class id; HTB
// selects a class by skb->priority before its own filters. Everything else
// is left alone, so unmatched traffic goes to HTB's default (the direct
// queue, unlimited). It always returns TC_ACT_UNSPEC (TCX_NEXT): it never
// drops or redirects and lets later programs run.
//
// Headers are read with bpf_skb_load_bytes_relative from the network
// header, so it works on devices with or without an Ethernet header.
// Non-first IPv4 fragments and IPv6 packets with extension headers before
// TCP are not classified.
func classifyInstructions() asm.Instructions {
	// loadRel copies n bytes at network-header offset off (plus r2 when
	// addR2) to the stack at dst; a failed read ends classification.
	loadRel := func(addR2 bool, off int32, dst int32, n int32) asm.Instructions {
		ins := asm.Instructions{asm.Mov.Reg(asm.R1, asm.R6)}
		if addR2 {
			ins = append(ins, asm.Add.Imm(asm.R2, off))
		} else {
			ins = append(ins, asm.Mov.Imm(asm.R2, off))
		}
		return append(ins,
			asm.Mov.Reg(asm.R3, asm.RFP),
			asm.Add.Imm(asm.R3, dst),
			asm.Mov.Imm(asm.R4, n),
			asm.Mov.Imm(asm.R5, bpfHdrStartNet),
			asm.FnSkbLoadBytesRelative.Call(),
			asm.JNE.Imm(asm.R0, 0, "out"),
		)
	}
	var p asm.Instructions
	p = append(p,
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.Mov.Imm(asm.R2, 0),
		asm.StoreMem(asm.RFP, keyOff, asm.R2, asm.DWord),
		asm.StoreMem(asm.RFP, keyOff+8, asm.R2, asm.DWord),
		asm.StoreMem(asm.RFP, keyOff+16, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R6, skbProtocol, asm.Word),
		asm.JEq.Imm(asm.R2, ethPIPv4LE, "ipv4"),
		asm.JEq.Imm(asm.R2, ethPIPv6LE, "ipv6"),
		asm.Ja.Label("out"),
	)
	// IPv4: copy the 20-byte header.
	ipv4 := loadRel(false, 0, hdrOff, 20)
	ipv4[0] = ipv4[0].WithSymbol("ipv4")
	p = append(p, ipv4...)
	p = append(p,
		asm.LoadMem(asm.R2, asm.RFP, hdrOff+9, asm.Byte), // protocol
		asm.JNE.Imm(asm.R2, ipprotoTCP, "out"),
		asm.LoadMem(asm.R2, asm.RFP, hdrOff+6, asm.Half), // flags + fragment offset
		asm.And.Imm(asm.R2, 0xff1f),                      // fragment offset bits (little-endian view)
		asm.JNE.Imm(asm.R2, 0, "out"),
		asm.LoadMem(asm.R7, asm.RFP, hdrOff, asm.Byte), // version + IHL
		asm.And.Imm(asm.R7, 0x0f),
		asm.JLT.Imm(asm.R7, 5, "out"),
		asm.LSh.Imm(asm.R7, 2),                            // L4 offset: IHL * 4
		asm.LoadMem(asm.R2, asm.RFP, hdrOff+16, asm.Word), // daddr
		asm.StoreMem(asm.RFP, keyOff+4, asm.R2, asm.Word),
		asm.StoreImm(asm.RFP, keyOff, 4, asm.Byte),
		asm.Ja.Label("port"),
	)
	// IPv6: copy the 40-byte fixed header.
	ipv6 := loadRel(false, 0, hdrOff, 40)
	ipv6[0] = ipv6[0].WithSymbol("ipv6")
	p = append(p, ipv6...)
	p = append(p,
		asm.LoadMem(asm.R2, asm.RFP, hdrOff+6, asm.Byte), // next header
		asm.JNE.Imm(asm.R2, ipprotoTCP, "out"),
	)
	for i := int16(0); i < 16; i += 4 { // daddr at header offset 24
		p = append(p,
			asm.LoadMem(asm.R2, asm.RFP, hdrOff+24+i, asm.Word),
			asm.StoreMem(asm.RFP, keyOff+4+i, asm.R2, asm.Word),
		)
	}
	p = append(p,
		asm.StoreImm(asm.RFP, keyOff, 6, asm.Byte),
		asm.Mov.Imm(asm.R7, 40),
	)
	// Destination port (network order) straight into the key.
	port := append(asm.Instructions{asm.Mov.Reg(asm.R2, asm.R7).WithSymbol("port")},
		loadRel(true, 2, keyOff+2, 2)...)
	p = append(p, port...)
	p = append(p,
		asm.LoadMapPtr(asm.R1, 0).WithReference(endpointsMapName),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, keyOff),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.StoreMem(asm.R6, skbPriority, asm.R1, asm.Word),
		asm.Mov.Imm(asm.R0, tcActUnspec).WithSymbol("out"),
		asm.Return(),
	)
	return p
}

func collectionSpec() *ebpf.CollectionSpec {
	return &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			endpointsMapName: {
				Name:       endpointsMapName,
				Type:       ebpf.Hash,
				KeySize:    endpointKeySize,
				ValueSize:  4,
				MaxEntries: endpointsCapacity,
				Pinning:    ebpf.PinByName,
			},
			stateMapName: {
				Name:       stateMapName,
				Type:       ebpf.Hash,
				KeySize:    4,
				ValueSize:  stateValueSize,
				MaxEntries: stateCapacity,
				Pinning:    ebpf.PinByName,
			},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			programName: {
				Name:         programName,
				Type:         ebpf.SchedCLS,
				License:      "Apache-2.0",
				Instructions: classifyInstructions(),
			},
		},
	}
}
