package shard

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	rt := orderRouter(t)
	e := rt.Explain("select v, avg(n) from t_order where id in (1, 2) group by v having avg(n) > 1", "db0")
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"route":"all"`, `"table":"t_order_00001"`, `"kind":"avg"`, `"op":"\u003e"`, `"node":"ds0"`} {
		if !strings.Contains(s, want) {
			t.Errorf("explain lacks %s: %s", want, s)
		}
	}
	e = rt.Explain("select * from t_order a join t_user b on a.id = b.uid", "db0")
	if e.Route != "refused" || e.Error == nil || e.Error.Code != 1235 || !strings.Contains(e.Error.Message, "JOIN") {
		t.Errorf("refusal: %+v", e)
	}
	if e := rt.Explain("select 1", "db0"); e.Route != "unsharded" || len(e.Targets) != 0 {
		t.Errorf("unsharded: %+v", e)
	}
	if e := rt.Explain("select * from t_order where id = ?", "db0"); e.Route != "all" {
		t.Errorf("parameter: %+v", e)
	}
}
