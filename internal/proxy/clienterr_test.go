package proxy

import (
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

func TestConnectorCErrorCodes(t *testing.T) {
	attrs := func(kv ...string) []byte {
		var b []byte
		for _, s := range kv {
			b = mysql.AppendLenEncString(b, s)
		}
		return b
	}
	for _, c := range []struct {
		attrs []byte
		want  bool
	}{
		{attrs("_os", "Linux", "_client_name", "libmariadb", "_client_version", "3.3.8"), true},
		{attrs("_client_name", "Go-MySQL-Driver"), false},
		{attrs("_client_name", "libmysql"), false},
		{nil, false},
		{[]byte{0xfc, 1}, false}, // truncated
	} {
		if got := isConnectorC(c.attrs); got != c.want {
			t.Errorf("isConnectorC(%q) = %v", c.attrs, got)
		}
	}
	for code, want := range map[uint16]uint16{
		2002: 1040, 2003: 1040, 2013: 1317, 2006: 1317, 2027: 1105, 5001: 1105,
		2000: 2000, 2062: 2062, 5000: 5000, 5030: 5030, 1064: 1064, 1927: 1927,
	} {
		in := mysql.NewError(code, "HY000", "m")
		got := forConnectorC(in)
		if got.Code != want || got.Message != "m" || got.SQLState != "HY000" {
			t.Errorf("forConnectorC(%d) = %v, want code %d", code, got, want)
		}
		if in.Code != code {
			t.Errorf("forConnectorC changed its argument")
		}
	}
}
