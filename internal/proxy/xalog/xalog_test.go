package xalog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLogCommitDoneReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "xa.log")
	l := New(path, 0)
	if ok, err := l.Committed("a"); err != nil || ok {
		t.Fatalf("empty log: %v %v", ok, err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := l.Commit(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Done("b"); err != nil {
		t.Fatal(err)
	}
	l.Close()
	// A torn last line (a crash during a write) is ignored.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("C")
	f.Close()
	l2 := New(path, 0)
	for id, want := range map[string]bool{"a": true, "b": false, "c": true, "d": false} {
		if ok, err := l2.Committed(id); err != nil || ok != want {
			t.Errorf("Committed(%s) = %v, %v; want %v", id, ok, err, want)
		}
	}
	if l2.Syncs() != 0 || l.Syncs() != 3 {
		t.Errorf("syncs %d %d", l.Syncs(), l2.Syncs())
	}
}

func TestLogCompacts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xa.log")
	l := New(path, 200)
	for i := 0; i < 100; i++ {
		id := "pisa:p1:x:" + strings.Repeat("z", i%7) + string(rune('a'+i%26))
		if err := l.Commit(id); err != nil {
			t.Fatal(err)
		}
		if i != 99 {
			if err := l.Done(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 400 {
		t.Errorf("log not compacted: %d bytes", st.Size())
	}
	p, _ := New(path, 0).Pending()
	if len(p) != 1 {
		t.Errorf("pending after compaction: %v", p)
	}
}

func TestIDsAndRecoverRows(t *testing.T) {
	g := NewIDs("proxy-a")
	a, b := g.Next(), g.Next()
	if a == b || !strings.HasPrefix(a, "pisa:proxy-a:") || len(a) > 64 {
		t.Fatalf("ids %q %q", a, b)
	}
	if !Own(Prefix("proxy-a"), FormatID, a) || Own(Prefix("proxy-b"), FormatID, a) || Own(Prefix("proxy-a"), 1, a) {
		t.Error("Own")
	}
	br, err := ParseRecover([]string{"1346982721", "5", "2", "gtridb1"})
	if err != nil || br.Gtrid != "gtrid" || br.Bqual != "b1" || br.FormatID != FormatID {
		t.Errorf("ParseRecover: %+v %v", br, err)
	}
	if _, err := ParseRecover([]string{"1", "9", "2", "gtridb1"}); err == nil {
		t.Error("bad lengths accepted")
	}
	if XID("pisa:a:b", "n'1") != "'pisa:a:b',X'6e2731',1346982721" {
		t.Error(XID("pisa:a:b", "n'1"))
	}
	for id, ok := range map[string]bool{"a": true, "": false, "a b": false, strings.Repeat("x", 33): false, "pod-1.ns_2": true} {
		if ValidProxyID(id) != ok {
			t.Errorf("ValidProxyID(%q)", id)
		}
	}
}
