package route

import (
	"errors"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

func sysvarEntry(name, value string) []byte {
	data := mysql.AppendLenEncString(nil, name)
	data = mysql.AppendLenEncString(data, value)
	return append(mysql.AppendLenEncInt([]byte{mysql.SessionTrackSystemVariables}, uint64(len(data))), data...)
}

func schemaEntry(db string) []byte {
	data := mysql.AppendLenEncString(nil, db)
	return append(mysql.AppendLenEncInt([]byte{mysql.SessionTrackSchema}, uint64(len(data))), data...)
}

func TestLastGTID(t *testing.T) {
	var st []byte
	st = append(st, schemaEntry("test")...)
	st = append(st, sysvarEntry("autocommit", "ON")...)
	st = append(st, sysvarEntry("last_gtid", "0-3306-7")...)
	st = append(st, 2, 1, '1') // state change
	g, ok := LastGTID(st)
	if !ok || string(g) != "0-3306-7" {
		t.Fatalf("LastGTID = %q %v", g, ok)
	}
	if g, ok := LastGTID(sysvarEntry("autocommit", "ON")); ok {
		t.Fatalf("found %q", g)
	}
	if _, ok := LastGTID([]byte{0, 200}); ok {
		t.Fatal("malformed block accepted")
	}
	if n := testing.AllocsPerRun(100, func() { LastGTID(st) }); n != 0 {
		t.Fatalf("LastGTID allocates %v", n)
	}
}

func TestGTIDQuery(t *testing.T) {
	for s, want := range map[string]bool{"0-1-2": true, "0-1-2,1-5-9": true, "": false, "0-1-2'": false, "x": false} {
		if ValidGTIDList([]byte(s)) != want {
			t.Errorf("ValidGTIDList(%q) != %v", s, want)
		}
	}
	q := AppendGTIDWaitQuery(nil, []byte("0-1-2"), 1500*time.Millisecond)
	if string(q) != "SELECT MASTER_GTID_WAIT('0-1-2', 1.5)" {
		t.Fatalf("query %q", q)
	}
	if !GTIDWaitCaughtUp([]byte("0"), false) || GTIDWaitCaughtUp([]byte("-1"), false) || GTIDWaitCaughtUp(nil, true) {
		t.Fatal("GTIDWaitCaughtUp")
	}
}

func TestCausalOptions(t *testing.T) {
	o := CausalOptions{}
	if err := o.Normalize(); err != nil || o.Mode != CausalOff || o.Enabled() {
		t.Fatalf("%+v %v", o, err)
	}
	o = CausalOptions{Mode: CausalGTID}
	if err := o.Normalize(); err != nil || o.Window != DefaultCausalWindow || o.WaitTimeout != DefaultCausalWaitTimeout || !o.Enabled() {
		t.Fatalf("%+v %v", o, err)
	}
	if err := (&CausalOptions{Mode: "always"}).Normalize(); err == nil {
		t.Fatal("bad mode accepted")
	}
	if err := (&CausalOptions{Mode: CausalWindow, Window: -1}).Normalize(); err == nil {
		t.Fatal("negative window accepted")
	}
}

func okWithGTID(gtid string) *mysql.OK {
	return &mysql.OK{Status: mysql.StatusSessionStateChange, SessionState: sysvarEntry("last_gtid", gtid)}
}

func TestCausalTracker(t *testing.T) {
	now := time.Unix(1000, 0)

	var nilTracker *CausalTracker
	if nilTracker.Enabled() || nilTracker.BeforeRead(now) != CausalNone {
		t.Fatal("nil tracker")
	}
	off := NewCausalTracker(CausalOptions{Mode: CausalOff})
	off.ObserveOK(okWithGTID("0-1-1"), true, now)
	if off.BeforeRead(now) != CausalNone || off.NeedsWait(1) {
		t.Fatal("off tracker acts")
	}

	win := NewCausalTracker(CausalOptions{Mode: CausalWindow, Window: time.Second})
	if win.BeforeRead(now) != CausalNone {
		t.Fatal("window: before any write")
	}
	win.ObserveOK(&mysql.OK{}, false, now) // a read on the writer
	if win.BeforeRead(now) != CausalNone {
		t.Fatal("window: after a read")
	}
	win.ObserveOK(okWithGTID("0-1-1"), true, now)
	if win.BeforeRead(now.Add(999*time.Millisecond)) != CausalWriter || win.NeedsWait(1) {
		t.Fatal("window: within the window")
	}
	if win.BeforeRead(now.Add(time.Second)) != CausalNone {
		t.Fatal("window: after the window")
	}

	g := NewCausalTracker(CausalOptions{Mode: CausalGTID, Window: time.Second, WaitTimeout: 250 * time.Millisecond})
	// A write without a GTID (binary log off): the window applies.
	g.ObserveOK(&mysql.OK{}, true, now)
	if g.BeforeRead(now) != CausalWriter {
		t.Fatal("gtid: write without GTID")
	}
	g.ObserveOK(okWithGTID("0-1-5"), true, now)
	if g.BeforeRead(now) != CausalWait || g.GTID() != "0-1-5" || !g.NeedsWait(1) || !g.NeedsWait(2) {
		t.Fatal("gtid: pending")
	}
	if q := string(g.WaitQuery()); q != "SELECT MASTER_GTID_WAIT('0-1-5', 0.25)" {
		t.Fatalf("WaitQuery %q", q)
	}
	g.CaughtUp(1)
	g.CaughtUp(100) // out of the bitmask: ignored
	if g.NeedsWait(1) || !g.NeedsWait(2) || !g.NeedsWait(100) || !g.NeedsWait(-1) {
		t.Fatal("gtid: CaughtUp")
	}
	g.ObserveOK(okWithGTID("0-1-5"), false, now) // same GTID: nothing new
	if g.NeedsWait(1) {
		t.Fatal("gtid: same GTID reset CaughtUp")
	}
	g.ObserveOK(okWithGTID("0-1-6"), true, now)
	if !g.NeedsWait(1) || g.GTID() != "0-1-6" {
		t.Fatal("gtid: new GTID keeps CaughtUp")
	}
	g.ObserveOK(okWithGTID("0-1-7'; DROP"), true, now) // not a GTID list: ignored
	if g.GTID() != "0-1-6" {
		t.Fatalf("gtid: took %q", g.GTID())
	}
	g.Reset()
	if g.BeforeRead(now) != CausalNone || g.NeedsWait(1) {
		t.Fatal("gtid: Reset")
	}
}

// fakePackets replays server packets.
type fakePackets struct {
	in   [][]byte
	sent []byte
}

func (f *fakePackets) ResetSeq() {}
func (f *fakePackets) WritePacketFlush(p []byte) error {
	f.sent = append([]byte(nil), p...)
	return nil
}
func (f *fakePackets) ReadPacket() ([]byte, error) {
	if len(f.in) == 0 {
		return nil, errors.New("EOF")
	}
	p := f.in[0]
	f.in = f.in[1:]
	return p, nil
}

func TestWaitGTIDPackets(t *testing.T) {
	eof := []byte{0xfe, 0, 0, 2, 0}
	okEOF := []byte{0xfe, 0, 0, 2, 0, 0, 0}
	col := []byte("def-column")
	row := func(v string) []byte { return mysql.AppendLenEncString(nil, v) }
	cases := []struct {
		name   string
		caps   uint32
		in     [][]byte
		caught bool
		err    bool
	}{
		{"caught up", 0, [][]byte{{1}, col, eof, row("0"), eof}, true, false},
		{"timeout", 0, [][]byte{{1}, col, eof, row("-1"), eof}, false, false},
		{"NULL", 0, [][]byte{{1}, col, eof, {0xfb}, eof}, false, false},
		{"deprecate EOF", mysql.ClientDeprecateEOF, [][]byte{{1}, col, row("0"), okEOF}, true, false},
		{"ERR", 0, [][]byte{mysql.AppendErr(nil, mysql.NewError(1941, "HY000", "Could not parse GTID list"))}, false, true},
		{"OK", 0, [][]byte{{0, 0, 0, 2, 0, 0, 0}}, false, true},
		{"no row", 0, [][]byte{{1}, col, eof, eof}, false, true},
		{"cut", 0, [][]byte{{1}, col}, false, true},
	}
	for _, c := range cases {
		f := &fakePackets{in: c.in}
		caught, err := WaitGTIDPackets(f, c.caps, []byte("SELECT 1"), nil)
		if caught != c.caught || (err != nil) != c.err {
			t.Errorf("%s: %v %v", c.name, caught, err)
		}
		if string(f.sent) != "\x03SELECT 1" {
			t.Errorf("%s: sent %q", c.name, f.sent)
		}
	}
	var me *mysql.Error
	_, err := WaitGTIDPackets(&fakePackets{in: cases[4].in}, 0, []byte("x"), nil)
	if !errors.As(err, &me) || me.Code != 1941 {
		t.Fatalf("ERR not returned as *mysql.Error: %v", err)
	}
}
