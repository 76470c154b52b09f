package shard

import (
	"reflect"
	"testing"
)

func TestPrepared(t *testing.T) {
	rt := orderRouter(t) // t_order: id mod 2
	p, err := rt.Prepare("SELECT v FROM t_order WHERE id = ?", "db0")
	if err != nil || p.Params != 1 {
		t.Fatal(err, p)
	}
	for _, c := range []struct {
		arg  any
		want []int
	}{
		{int64(5), []int{1}}, {uint64(4), []int{0}}, {"7", []int{1}}, {[]byte("8"), []int{0}},
		{float64(3), []int{1}}, {nil, []int{0, 1}}, {"x", []int{0, 1}}, {2.5, []int{0, 1}},
	} {
		plan, err := p.Bind([]any{c.arg})
		if err != nil {
			t.Fatal(err)
		}
		if got := shardsOf(plan); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%#v: %v want %v", c.arg, got, c.want)
		}
		if plan.Targets[0].SQL != "SELECT `v` FROM `db0`.`t_order_0000"+string(rune('0'+plan.Targets[0].Shard))+"` WHERE `id`=?" || plan.Targets[0].Params != nil {
			t.Errorf("target %+v", plan.Targets[0])
		}
	}
	in, _ := rt.Prepare("SELECT v FROM t_order WHERE id IN (?, ?) ORDER BY v LIMIT 10", "db0")
	if plan, _ := in.Bind([]any{int64(1), int64(3)}); !reflect.DeepEqual(shardsOf(plan), []int{1}) || plan.Merge != nil {
		t.Errorf("IN same shard: %+v", plan)
	}
	if plan, _ := in.Bind([]any{int64(1), int64(2)}); !reflect.DeepEqual(shardsOf(plan), []int{0, 1}) || plan.Merge == nil || plan.Merge.Limit != 10 {
		t.Errorf("IN two shards: %+v", plan)
	}
	lim, _ := rt.Prepare("SELECT v FROM t_order ORDER BY v LIMIT ?", "db0")
	if plan, err := lim.Bind([]any{int64(3)}); err != nil || plan.Merge == nil || plan.Merge.Limit != 3 || !plan.Merge.HasLimit ||
		plan.Targets[1].SQL != "SELECT `v` FROM `db0`.`t_order_00001` ORDER BY `v` LIMIT ?" || plan.Targets[1].Params != nil {
		t.Errorf("LIMIT ?: %v %+v", err, plan)
	}
	if plan, _ := lim.Bind([]any{int64(5)}); plan.Merge.Limit != 5 {
		t.Errorf("LIMIT ? reuses a Merge: %+v", plan.Merge)
	}
	agg, _ := rt.Prepare("SELECT COUNT(*) FROM t_order WHERE v = ? LIMIT ?", "db0")
	if plan, err := agg.Bind([]any{"x", int64(1)}); err != nil || plan.Merge.Limit != 1 || !slicesEqual(plan.Targets[0].Params, []int{0}) {
		t.Errorf("aggregate LIMIT ?: %v %+v", err, plan)
	}
	rg, _ := rt.Prepare("DELETE FROM t_order WHERE id BETWEEN ? AND ?", "db0")
	if plan, _ := rg.Bind([]any{int64(4), int64(4)}); !reflect.DeepEqual(shardsOf(plan), []int{0}) {
		t.Errorf("range: %+v", plan)
	}

	// Parameters duplicated into a derived column.
	d, _ := rt.Prepare("SELECT id FROM t_order WHERE v = ? ORDER BY v + ?", "db0")
	plan, err := d.Bind([]any{"a", int64(1)})
	if err != nil || len(plan.Targets) != 2 {
		t.Fatal(err, plan)
	}
	if tg := plan.Targets[0]; tg.SQL != "SELECT `id`,`v`+? AS `pisa_derived_0` FROM `db0`.`t_order_00000` WHERE `v`=? ORDER BY `pisa_derived_0`" || !reflect.DeepEqual(tg.Params, []int{1, 0}) {
		t.Errorf("derived params: %+v", tg)
	}
}

func TestPreparedInsert(t *testing.T) {
	rt := orderRouter(t)
	one, _ := rt.Prepare("INSERT INTO t_order (id, v) VALUES (?, ?)", "db0")
	plan, err := one.Bind([]any{int64(3), "x"})
	if err != nil || !reflect.DeepEqual(shardsOf(plan), []int{1}) || plan.Targets[0].SQL != "INSERT INTO `db0`.`t_order_00001` (`id`,`v`) VALUES (?,?)" {
		t.Errorf("%v %+v", err, plan)
	}
	if _, err := one.Bind([]any{nil, "x"}); !isRefusal(err) {
		t.Errorf("NULL key: %v", err)
	}
	two, _ := rt.Prepare("INSERT INTO t_order (id, v) VALUES (?, ?), (?, ?)", "db0")
	if plan, err := two.Bind([]any{int64(2), "a", int64(4), "b"}); err != nil || !reflect.DeepEqual(shardsOf(plan), []int{0}) {
		t.Errorf("same shard: %v %+v", err, plan)
	}
	// Rows on different shards: one INSERT per shard, built at Bind.
	plan, err = two.Bind([]any{int64(2), "a", int64(3), "b"})
	if err != nil || len(plan.Targets) != 2 || plan.Kind != RouteAll {
		t.Fatalf("different shards: %v %+v", err, plan)
	}
	if tg := plan.Targets[0]; tg.SQL != "INSERT INTO `db0`.`t_order_00000` (`id`,`v`) VALUES (?,?)" || !reflect.DeepEqual(tg.Params, []int{0, 1}) {
		t.Errorf("split target 0 %+v", tg)
	}
	if tg := plan.Targets[1]; tg.SQL != "INSERT INTO `db0`.`t_order_00001` (`id`,`v`) VALUES (?,?)" || !reflect.DeepEqual(tg.Params, []int{2, 3}) {
		t.Errorf("split target 1 %+v", tg)
	}
	three, _ := rt.Prepare("INSERT INTO t_order (id, v) VALUES (?, ?), (?, 'x'), (?, ?) ON DUPLICATE KEY UPDATE v = ?", "db0")
	plan, err = three.Bind([]any{int64(1), "a", int64(2), int64(3), "c", "u"})
	if err != nil || len(plan.Targets) != 2 {
		t.Fatalf("three: %v %+v", err, plan)
	}
	if tg := plan.Targets[0]; tg.SQL != "INSERT INTO `db0`.`t_order_00000` (`id`,`v`) VALUES (?,'x') ON DUPLICATE KEY UPDATE `v`=?" || !reflect.DeepEqual(tg.Params, []int{2, 5}) {
		t.Errorf("three target 0 %+v", tg)
	}
	if tg := plan.Targets[1]; tg.SQL != "INSERT INTO `db0`.`t_order_00001` (`id`,`v`) VALUES (?,?),(?,?) ON DUPLICATE KEY UPDATE `v`=?" || !reflect.DeepEqual(tg.Params, []int{0, 1, 3, 4, 5}) {
		t.Errorf("three target 1 %+v", tg)
	}
	if _, err := three.Bind([]any{int64(1), "a", nil, int64(3), "c", "u"}); !isRefusal(err) {
		t.Errorf("NULL key in a split: %v", err)
	}
	// Literal keys: the split is fixed and each target says its params.
	lit, _ := rt.Prepare("INSERT INTO t_order (id, v) VALUES (1, ?), (2, ?), (3, ?)", "db0")
	plan, err = lit.Bind([]any{"a", "b", "c"})
	if err != nil || len(plan.Targets) != 2 {
		t.Fatal(err, plan)
	}
	if tg := plan.Targets[0]; tg.Shard != 0 || !reflect.DeepEqual(tg.Params, []int{1}) || tg.SQL != "INSERT INTO `db0`.`t_order_00000` (`id`,`v`) VALUES (2,?)" {
		t.Errorf("target 0 %+v", tg)
	}
	if tg := plan.Targets[1]; tg.Shard != 1 || !reflect.DeepEqual(tg.Params, []int{0, 2}) {
		t.Errorf("target 1 %+v", tg)
	}
	// The sample (for COM_STMT_PREPARE metadata) has every parameter.
	if tg, ok := lit.Sample(); !ok || tg.Params != nil || tg.SQL != "INSERT INTO `db0`.`t_order_00000` (`id`,`v`) VALUES (1,?),(2,?),(3,?)" {
		t.Errorf("sample %+v", tg)
	}
	if tg, ok := two.Sample(); !ok || tg.Params != nil || tg.Shard != 0 {
		t.Errorf("sample %+v", tg)
	}
}

func TestBindAllocs(t *testing.T) {
	rt := orderRouter(t)
	p, _ := rt.Prepare("SELECT v FROM t_order WHERE id = ?", "db0")
	args := []any{int64(7)}
	if n := testing.AllocsPerRun(100, func() { _, _ = p.Bind(args) }); n > 0 {
		t.Errorf("point Bind allocates %v", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = rt.Plan("SELECT v FROM t_order WHERE id = 7", "db0") }); n > 0 {
		t.Errorf("cached point Plan allocates %v", n)
	}
}

func BenchmarkBindPoint(b *testing.B) {
	rt := orderRouter(b)
	p, _ := rt.Prepare("SELECT v FROM t_order WHERE id = ?", "db0")
	args := []any{int64(7)}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = p.Bind(args)
	}
}

func BenchmarkPlanPointCached(b *testing.B) {
	rt := orderRouter(b)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = rt.Plan("SELECT v FROM t_order WHERE id = 7", "db0")
	}
}

func BenchmarkPrepareUncached(b *testing.B) {
	rt := orderRouter(b)
	b.ReportAllocs()
	for b.Loop() {
		_ = rt.prepare("SELECT v, count(*) FROM t_order WHERE id IN (1, 2) GROUP BY v ORDER BY v LIMIT 5", "db0")
	}
}

func slicesEqual(a, b []int) bool { return reflect.DeepEqual(a, b) }
