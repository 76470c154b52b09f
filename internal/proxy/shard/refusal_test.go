package shard

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// TestRefusalReasons checks the reason set and that a refusal is the same
// ERR 1235 to everything that looks for a *mysql.Error; TestRefusals walks
// the planner's refusals on one table, the cases here those of binding and
// broadcast tables.
func TestRefusalReasons(t *testing.T) {
	label := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	names := map[string]Reason{}
	for _, r := range Reasons() {
		n := r.String()
		if !label.MatchString(n) {
			t.Errorf("reason %d: label %q", r, n)
		}
		if o, dup := names[n]; dup {
			t.Errorf("reasons %d and %d are both %q", o, r, n)
		}
		names[n] = r
	}
	if Reasons()[0] != ReasonOther || Reason(numReasons).String() != "other" {
		t.Error("ReasonOther is not first, or an unknown reason is not other")
	}

	err := Refuse(ReasonUnion, "UNION on sharded table %s is not supported", "t")
	want := mysql.NewError(ErrCodeNotSupported, "42000", "UNION on sharded table %s is not supported", "t")
	var me *mysql.Error
	if !errors.As(err, &me) || *me != *want || err.Error() != want.Error() {
		t.Errorf("refusal %v (%+v), want %+v", err, me, want)
	}
	if got := string(mysql.AppendErr(nil, me)); got != string(mysql.AppendErr(nil, want)) {
		t.Errorf("ERR packet %q", got)
	}
	if r := ReasonOf(fmt.Errorf("wrapped: %w", err)); r != ReasonUnion {
		t.Errorf("wrapped: %s", r)
	}
	if r := ReasonOf(want); r != ReasonOther {
		t.Errorf("a 1235 without a reason: %s", r)
	}
	if r := ReasonOf(nil); r != ReasonOther {
		t.Errorf("nil: %s", r)
	}

	bind := tableRule("t_order", "mod", "id", 2)
	bind.BindingTables = []string{"t_item"}
	bind.BroadcastTables = []string{"t_bc"}
	rt := mustRouter(t, bind, tableRule("t_item", "mod", "oid", 2))
	for _, c := range []struct {
		sql    string
		reason Reason
	}{
		{"select * from t_order o join t_item i on o.v = i.v", ReasonJoin},
		{"select * from t_bc; select 1", ReasonMultiStatement},
		{"select * from t_bc join x on t_bc.a = x.a", ReasonJoin},
		{"insert into t_bc select * from x", ReasonStatement},
		{"rename table t_bc to t_old", ReasonStatement},
		{"select * from t_bc into outfile '/tmp/x'", ReasonStatement},
		{"create table t_bc like x", ReasonStatement},
		{"lock tables t_bc read", ReasonStatement},
	} {
		_, err := rt.Plan(c.sql, "db0")
		if !isRefusal(err) {
			t.Errorf("%s: got %v, want 1235", c.sql, err)
		} else if got := ReasonOf(err); got != c.reason {
			t.Errorf("%s: reason %s, want %s (%v)", c.sql, got, c.reason, err)
		}
		if e := rt.Explain(c.sql, "db0"); e.Error == nil || e.Error.Reason != c.reason.String() {
			t.Errorf("%s: explained as %+v", c.sql, e.Error)
		}
	}
}

// TestRefusalReasonsDocumented checks that docs/sharding.md lists every
// label of pisa_proxy_sharding_refusals_total, and no other.
func TestRefusalReasonsDocumented(t *testing.T) {
	b, err := os.ReadFile("../../../docs/sharding.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "\n### Refusal reasons")
	if i < 0 {
		t.Fatal("docs/sharding.md has no \"### Refusal reasons\" section")
	}
	sec := doc[i+1:]
	if j := strings.Index(sec, "\n#"); j >= 0 {
		sec = sec[:j]
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|").FindAllStringSubmatch(sec, -1) {
		listed[m[1]] = true
	}
	for _, r := range Reasons() {
		if !listed[r.String()] {
			t.Errorf("docs/sharding.md does not list reason %s", r)
		}
		delete(listed, r.String())
	}
	for l := range listed {
		t.Errorf("docs/sharding.md lists reason %s, which the code does not have", l)
	}
}
