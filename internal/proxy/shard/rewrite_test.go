package shard

import (
	"reflect"
	"strings"
	"testing"
)

func orderRouter(t testing.TB) *Router {
	return mustRouter(t, tableRule("t_order", "mod", "id", 2), dbRule("t_user", "mod", "uid", "ds1", "ds2"))
}

// TestRewriteSQL checks the physical SQL of shard 0 (or the only target).
func TestRewriteSQL(t *testing.T) {
	rt := orderRouter(t)
	cases := []struct{ sql, want string }{
		{"select * from t_order where id = 2", "SELECT * FROM `db0`.`t_order_00000` WHERE `id`=2"},
		{"SELECT t_order.id, `t_order`.v FROM `t_order` WHERE t_order.id = 2", "SELECT `t_order_00000`.`id`,`t_order_00000`.`v` FROM `db0`.`t_order_00000` WHERE `t_order_00000`.`id`=2"},
		{"select db0.t_order.id from db0.t_order where id = 2", "SELECT `db0`.`t_order_00000`.`id` FROM `db0`.`t_order_00000` WHERE `id`=2"},
		{"select o.id from t_order as o where o.id = 2", "SELECT `o`.`id` FROM `db0`.`t_order_00000` AS `o` WHERE `o`.`id`=2"},
		{"select t_order.* from t_order where id = 2", "SELECT `t_order_00000`.* FROM `db0`.`t_order_00000` WHERE `id`=2"},
		{"select 'it''s', 'a\\\\b', \"dq\", _latin1'x', 'x\\ny' from t_order where id = 2 /* comment */",
			"SELECT 'it''s','a\\\\b','dq',_latin1 'x','x\ny' FROM `db0`.`t_order_00000` WHERE `id`=2"},
		{"select /*!40001 SQL_NO_CACHE */ v from t_order where id = 2", "SELECT SQL_NO_CACHE `v` FROM `db0`.`t_order_00000` WHERE `id`=2"},
		{"update t_order set v = v + 1 where id = 2", "UPDATE `db0`.`t_order_00000` SET `v`=`v`+1 WHERE `id`=2"},
		{"delete from t_order where id = 2", "DELETE FROM `db0`.`t_order_00000` WHERE `id`=2"},
		{"insert into t_order (id, v) values (2, 'a') on duplicate key update v = values(v)",
			"INSERT INTO `db0`.`t_order_00000` (`id`,`v`) VALUES (2,'a') ON DUPLICATE KEY UPDATE `v`=VALUES(`v`)"},
		{"replace into t_order set id = 2, v = 'b'", "REPLACE INTO `db0`.`t_order_00000` SET `id`=2,`v`='b'"},
		{"insert ignore into db0.t_order (id) values (4)", "INSERT IGNORE INTO `db0`.`t_order_00000` (`id`) VALUES (4)"},
		{"select * from t_user where uid = 3", "SELECT * FROM `db2`.`t_user` WHERE `uid`=3"},
		{"create table t_order (id bigint not null primary key, v varchar(10) default 'x')",
			"CREATE TABLE `db0`.`t_order_00000` (`id` BIGINT NOT NULL PRIMARY KEY,`v` VARCHAR(10) DEFAULT 'x')"},
		{"alter table t_order add index ix (v)", "ALTER TABLE `db0`.`t_order_00000` ADD INDEX `ix`(`v`)"},
		{"truncate table t_order", "TRUNCATE TABLE `db0`.`t_order_00000`"},
		{"drop table if exists t_order", "DROP TABLE IF EXISTS `db0`.`t_order_00000`"},
		{"create index ix on t_order (v)", "CREATE INDEX `ix` ON `db0`.`t_order_00000` (`v`)"},
		{"drop index ix on t_order", "DROP INDEX `ix` ON `db0`.`t_order_00000`"},
		{"show create table t_order", "SHOW CREATE TABLE `db0`.`t_order_00000`"},
		{"show columns from t_order", "SHOW COLUMNS IN `db0`.`t_order_00000`"},
		{"show index from t_order from db0", "SHOW INDEX IN `db0`.`t_order_00000`"},
		{"describe t_order", "DESC `db0`.`t_order_00000`"},
		{"explain select * from t_order where id = 3", "EXPLAIN SELECT * FROM `db0`.`t_order_00001` WHERE `id`=3"},
		{"explain format=json update t_order set v = 1 where id = 3", "EXPLAIN FORMAT=JSON UPDATE `db0`.`t_order_00001` SET `v`=1 WHERE `id`=3"},
	}
	for _, c := range cases {
		db := "db0"
		if strings.Contains(c.sql, "t_user") {
			db = "db1"
		}
		p, err := rt.Plan(c.sql, db)
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no targets", c.sql)
			continue
		}
		if got := p.Targets[0].SQL; got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.sql, got, c.want)
		}
	}
}

func TestRewriteNoBackslashEscapes(t *testing.T) {
	rt := orderRouter(t)
	// Parses only with NO_BACKSLASH_ESCAPES: restored without escaping.
	p := mustPlan(t, rt, `select 'a\' from t_order where id = 2`, "db0")
	if got, want := p.Targets[0].SQL, "SELECT 'a\\' FROM `db0`.`t_order_00000` WHERE `id`=2"; got != want {
		t.Errorf("got %s want %s", got, want)
	}
}

func TestInsertSplit(t *testing.T) {
	rt := orderRouter(t)
	p := mustPlan(t, rt, "insert into t_order (v, id) values ('a', 1), ('b', 2), ('c', 3)", "db0")
	if p.Kind != RouteAll || len(p.Targets) != 2 || p.Merge != nil {
		t.Fatalf("plan %+v", p)
	}
	want := []string{
		"INSERT INTO `db0`.`t_order_00000` (`v`,`id`) VALUES ('b',2)",
		"INSERT INTO `db0`.`t_order_00001` (`v`,`id`) VALUES ('a',1),('c',3)",
	}
	for i, tg := range p.Targets {
		if tg.SQL != want[i] {
			t.Errorf("target %d: %s", i, tg.SQL)
		}
	}
	p = mustPlan(t, rt, "insert into t_order (v, id) values ('a', 1), ('c', 3)", "db0")
	if p.Kind != RouteSingle || p.Targets[0].SQL != "INSERT INTO `db0`.`t_order_00001` (`v`,`id`) VALUES ('a',1),('c',3)" {
		t.Errorf("plan %+v", p)
	}
}

// TestMergeSpecs checks the multi-shard rewrite and its Merge.
func TestMergeSpecs(t *testing.T) {
	rt := orderRouter(t)
	cases := []struct {
		sql   string
		want  string // shard 0's SQL
		merge Merge
	}{
		{"select id, v from t_order order by v desc, id limit 2, 3",
			"SELECT `id`,`v` FROM `db0`.`t_order_00000` ORDER BY `v` DESC,`id` LIMIT 5",
			Merge{Columns: 2, OrderBy: []SortKey{{1, true}, {0, false}}, Offset: 2, Limit: 3, HasLimit: true}},
		{"select id from t_order order by v",
			"SELECT `id`,`v` AS `pisa_derived_0` FROM `db0`.`t_order_00000` ORDER BY `pisa_derived_0`",
			Merge{Columns: 1, Derived: 1, OrderBy: []SortKey{{1, false}}}},
		{"select id x from t_order order by x, 1 limit 4",
			"SELECT `id` AS `x` FROM `db0`.`t_order_00000` ORDER BY `x`,1 LIMIT 4",
			Merge{Columns: 1, OrderBy: []SortKey{{0, false}, {0, false}}, Limit: 4, HasLimit: true}},
		{"select * from t_order order by v",
			"SELECT *,`v` AS `pisa_derived_0` FROM `db0`.`t_order_00000` ORDER BY `pisa_derived_0`",
			Merge{Columns: -1, Derived: 1, OrderBy: []SortKey{{-1, false}}}},
		{"select *, v from t_order order by v",
			"SELECT *,`v` FROM `db0`.`t_order_00000` ORDER BY `v`",
			Merge{Columns: -1, OrderBy: []SortKey{{-1, false}}}},
		{"select count(*), sum(n), min(n), max(n), avg(n) from t_order",
			"SELECT COUNT(1) AS `count(*)`,SUM(`n`) AS `sum(n)`,MIN(`n`) AS `min(n)`,MAX(`n`) AS `max(n)`,AVG(`n`) AS `avg(n)`,SUM(`n`) AS `pisa_derived_0`,COUNT(`n`) AS `pisa_derived_1` FROM `db0`.`t_order_00000`",
			Merge{Columns: 5, Derived: 2, Aggregates: []Aggregate{{0, AggCount, 0, 0}, {1, AggSum, 0, 0}, {2, AggMin, 0, 0}, {3, AggMax, 0, 0}, {4, AggAvg, 5, 6}}}},
		{"select count(distinct id) from t_order limit 1",
			"SELECT COUNT(DISTINCT `id`) AS `count(distinct id)` FROM `db0`.`t_order_00000`",
			Merge{Columns: 1, Aggregates: []Aggregate{{0, AggCount, 0, 0}}, Limit: 1, HasLimit: true}},
		{"select v, count(*) from t_order group by v",
			"SELECT `v`,COUNT(1) AS `count(*)` FROM `db0`.`t_order_00000` GROUP BY `v` ORDER BY `v`",
			Merge{Columns: 2, GroupBy: []int{0}, OrderBy: []SortKey{{0, false}}, Aggregates: []Aggregate{{1, AggCount, 0, 0}}}},
		{"select count(*) c from t_order group by v, w order by v desc limit 3",
			"SELECT COUNT(1) AS `c`,`v` AS `pisa_derived_0`,`w` AS `pisa_derived_1` FROM `db0`.`t_order_00000` GROUP BY `v`,`w` ORDER BY `v` DESC,`w`",
			Merge{Columns: 1, Derived: 2, GroupBy: []int{1, 2}, OrderBy: []SortKey{{1, true}, {2, false}}, Aggregates: []Aggregate{{0, AggCount, 0, 0}}, Limit: 3, HasLimit: true}},
		{"select v, avg(n) a from t_order group by v having count(*) > 1 and a <= 2.5 order by a desc",
			"SELECT `v`,AVG(`n`) AS `a`,SUM(`n`) AS `pisa_derived_0`,COUNT(`n`) AS `pisa_derived_1`,COUNT(1) AS `pisa_derived_2` FROM `db0`.`t_order_00000` GROUP BY `v` ORDER BY `v`",
			Merge{Columns: 2, Derived: 3, GroupBy: []int{0}, OrderBy: []SortKey{{0, false}},
				Aggregates: []Aggregate{{1, AggAvg, 2, 3}, {4, AggCount, 0, 0}},
				Having:     []Cond{{4, OpGT, "1"}, {1, OpLE, "2.5"}}, Resort: []SortKey{{1, true}}}},
		{"select v, count(*) from t_order group by v having v > 'a' and 3 > count(*)",
			"SELECT `v`,COUNT(1) AS `count(*)` FROM `db0`.`t_order_00000` GROUP BY `v` ORDER BY `v`",
			Merge{Columns: 2, GroupBy: []int{0}, OrderBy: []SortKey{{0, false}}, Aggregates: []Aggregate{{1, AggCount, 0, 0}},
				Having: []Cond{{0, OpGT, "a"}, {1, OpLT, "3"}}}},
		// GROUP BY the sharding key: groups are whole on each shard.
		{"select id, count(distinct v) from t_order group by id having count(*) > 1 limit 2",
			"SELECT `id`,COUNT(DISTINCT `v`) AS `count(distinct v)` FROM `db0`.`t_order_00000` GROUP BY `id` HAVING COUNT(1)>1 ORDER BY `id` LIMIT 2",
			Merge{Columns: 2, OrderBy: []SortKey{{0, false}}, Limit: 2, HasLimit: true}},
		{"select distinct v, count(*) from t_order group by v",
			"SELECT DISTINCT `v`,COUNT(1) AS `count(*)` FROM `db0`.`t_order_00000` GROUP BY `v` ORDER BY `v`",
			Merge{Columns: 2, GroupBy: []int{0}, OrderBy: []SortKey{{0, false}}, Aggregates: []Aggregate{{1, AggCount, 0, 0}}}},
		{"select distinct v, w from t_order order by w desc",
			"SELECT DISTINCT `v`,`w` FROM `db0`.`t_order_00000` ORDER BY `w` DESC,1",
			Merge{Columns: 2, Distinct: true, OrderBy: []SortKey{{1, true}, {0, false}}}},
	}
	for _, c := range cases {
		p, err := rt.Plan(c.sql, "db0")
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		if p.Kind != RouteAll || len(p.Targets) != 2 || p.Merge == nil {
			t.Errorf("%s: plan %+v", c.sql, p)
			continue
		}
		if got := p.Targets[0].SQL; got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.sql, got, c.want)
		}
		if !reflect.DeepEqual(*p.Merge, c.merge) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.sql, *p.Merge, c.merge)
		}
	}
}

func TestShowTables(t *testing.T) {
	rt := orderRouter(t)
	for _, q := range []string{"show tables", "show full tables", "show table status", "show tables from db0"} {
		p := mustPlan(t, rt, q, "db0")
		if p.Kind != RouteUnsharded || p.Rename["t_order_00001"] != "t_order" || len(p.Rename) != 2 {
			t.Errorf("%s: %+v", q, p)
		}
	}
	// Database strategy: physical names are logical; nothing to rename.
	if p := mustPlan(t, rt, "show tables", "db1"); p.Rename != nil {
		t.Errorf("db1: %+v", p)
	}
}

func TestMergeResolve(t *testing.T) {
	m := &Merge{Columns: -1, Derived: 1, OrderBy: []SortKey{{-1, true}}, Resort: []SortKey{{-2, false}}}
	r := m.Resolve(5)
	if r.Columns != 4 || r.OrderBy[0].Column != 4 || r.Resort[0].Column != 3 || m.OrderBy[0].Column != -1 {
		t.Errorf("resolved %+v (orig %+v)", r, m)
	}
	abs := &Merge{Columns: 2}
	if abs.Resolve(3) != abs {
		t.Error("absolute spec copied")
	}
}

func TestRefusals(t *testing.T) {
	rt := orderRouter(t)
	cases := []struct {
		sql    string
		reason Reason
	}{
		{"select * from t_order a join t_user b on a.id = b.uid", ReasonJoin},
		{"select * from t_order a, t_order b", ReasonJoin},
		{"select * from t_order where id in (select id from t_order)", ReasonSubquery},
		{"select * from t_order where exists (select 1)", ReasonSubquery},
		{"select * from (select * from t_order) x", ReasonSubquery},
		{"select id from t_order union select id from t_order", ReasonUnion},
		{"with x as (select 1) select * from t_order", ReasonCTE},
		{"select row_number() over () from t_order", ReasonWindow},
		{"select * from t_order for update", ReasonLockingRead},
		{"select * from t_order lock in share mode", ReasonLockingRead},
		{"select sql_calc_found_rows * from t_order limit 1", ReasonLimit},
		{"select * from t_order into outfile '/tmp/x'", ReasonStatement},
		{"select v from t_order limit ?, ?", ReasonLimit},
		{"select count(distinct v) from t_order", ReasonAggregate},
		{"select sum(distinct v) from t_order", ReasonAggregate},
		{"select group_concat(v) from t_order", ReasonAggregate},
		{"select sum(n) + 1 from t_order", ReasonAggregate},
		{"select v, count(*) from t_order group by v with rollup", ReasonGroupBy},
		{"select v, count(*) from t_order group by v having count(*) > n", ReasonHaving},
		{"select v, count(*) from t_order group by v having count(*) > 1 or v = 2", ReasonHaving},
		{"select distinct count(*) from t_order group by v", ReasonDistinct},
		{"select *, count(*) from t_order group by v", ReasonAggregate},
		{"select distinct v from t_order order by w", ReasonDistinct},
		{"insert into t_order values (1, 'a')", ReasonInsert},
		{"insert into t_order (v) values ('a')", ReasonInsert},
		{"insert into t_order (id, v) values (null, 'a')", ReasonShardingKey},
		{"insert into t_order (id, v) values ('abc', 'a')", ReasonShardingKey},
		{"insert into t_order (id, v) values (1.5, 'a')", ReasonShardingKey},
		{"insert into t_order (id, v) values (1 + 1, 'a')", ReasonShardingKey},
		{"insert into t_order (id, v) values (default, 'a')", ReasonShardingKey},
		{"insert into t_order (id, v) select id, v from x", ReasonStatement},
		{"insert into t_order (id, v) values (1, 'a') on duplicate key update id = 2", ReasonShardingKey},
		{"update t_order set id = 3 where id = 2", ReasonShardingKey},
		{"update t_order set v = 1 order by v limit 1", ReasonLimit},
		{"delete from t_order limit 1", ReasonLimit},
		{"delete t_order from t_order join x on t_order.id = x.id", ReasonJoin},
		{"rename table t_order to t_old", ReasonStatement},
		{"alter table t_order rename to t_old", ReasonStatement},
		{"create table t_order like t_template", ReasonStatement},
		{"create table t_order select * from x", ReasonStatement},
		{"create view v as select * from t_order", ReasonStatement},
		{"lock tables t_order read", ReasonStatement},
		{"select * from t_order; select 1", ReasonMultiStatement},
		{"explain select * from t_order", ReasonExplain},
		{"load data infile 'x' into table t_order", ReasonStatement},
		{"prepare s from 'select * from t_order where id = ?'", ReasonPreparedStatement},
		{"select * from t_order where v in (select v from x)", ReasonSubquery},
		{"select * from t_order, x", ReasonJoin},
		{"insert into t_order (id, v) select id, v from t_order", ReasonStatement},
		{"explain analyze select * from t_order where id = 1", ReasonExplain},
		{"show create view t_order", ReasonStatement},
		{"select v, count(*) from t_order group by 5", ReasonGroupBy},
		{"select v, count(*) c from t_order group by v order by count(*)+1", ReasonOrderBy},
		{"select distinct * from t_order", ReasonDistinct},
		{"prepare s from @q", ReasonPreparedStatement},
		{"SELEC * FROM t_order", ReasonUnparsed},
	}
	seen := map[Reason]bool{}
	for _, c := range cases {
		_, err := rt.Plan(c.sql, "db0")
		if !isRefusal(err) {
			t.Errorf("%s: got %v, want 1235", c.sql, err)
			continue
		} else if strings.Contains(c.sql, "t_order") && !strings.Contains(err.Error(), "t_order") {
			t.Errorf("%s: reason does not name the table: %v", c.sql, err)
		}
		if got := ReasonOf(err); got != c.reason {
			t.Errorf("%s: reason %s, want %s (%v)", c.sql, got, c.reason, err)
		}
		seen[c.reason] = true
	}
	// Every reason the planner gives on one table is walked above (the
	// others come from the executor, the merger or other rules: see
	// TestRefusalReasons).
	for _, r := range Reasons() {
		switch r {
		case ReasonOther, ReasonTransaction, ReasonCollation, ReasonInternal:
			continue
		}
		if !seen[r] {
			t.Errorf("no refusal case for reason %s", r)
		}
	}
	// Refused across shards only: on one shard they run.
	for _, sql := range []string{
		"select * from t_order where id = 1 for update",
		"select count(distinct v) from t_order where id = 1",
		"update t_order set v = 1 where id = 1 order by v limit 1",
		"delete from t_order where id = 3 limit 1",
		"select v from t_order where id = 1 limit ?",
		"explain select * from t_order where id = 1",
	} {
		if p, err := rt.Plan(sql, "db0"); err != nil || p.Kind != RouteSingle {
			t.Errorf("%s: %v %+v", sql, err, p)
		}
	}
	_, err := rt.Plan("select * from t_order a join t_user b on a.id = b.uid", "db0")
	if err == nil || !strings.Contains(err.Error(), "cross-shard JOIN of t_order and t_user is not supported") {
		t.Errorf("join message: %v", err)
	}
	_, err = rt.Plan("update t_order set id = 3", "db0")
	if err == nil || !strings.Contains(err.Error(), "changing the sharding key of t_order is not supported") {
		t.Errorf("update key message: %v", err)
	}
}
