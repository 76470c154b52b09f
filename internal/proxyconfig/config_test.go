package proxyconfig

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

const examplePath = "../../examples/proxy.toml"

// minimalPisanix has the shape of the Pisanix README / §4.2 standalone file.
const minimalPisanix = `
[admin]
host = "0.0.0.0"
port = 5591
log_level = "INFO"

[proxy]
[[proxy.config]]
name = "mysql"
listen_addr = "0.0.0.0:9088"
user = "root"
password = "12345678"
db = "test"
backend_type = "mysql"
pool_size = 3

[proxy.config.simple_loadbalance]
balance_type = "random"
nodes = ["ds001"]

[mysql]
[[mysql.node]]
name = "ds001"
db = "test"
user = "root"
password = "root"
host = "127.0.0.1"
port = 3306
role = "readwrite"
`

func mustParse(t *testing.T, data string, f Format) *Config {
	t.Helper()
	cfg, err := Parse([]byte(data), f)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func TestLoadExample(t *testing.T) {
	cfg, err := Load(examplePath)
	if err != nil {
		t.Fatalf("Load(%s): %v", examplePath, err)
	}
	if len(cfg.Proxy.Config) != 1 || len(cfg.MySQL.Nodes) != 1 {
		t.Fatalf("want 1 listener and 1 node, got %d and %d", len(cfg.Proxy.Config), len(cfg.MySQL.Nodes))
	}
	l := cfg.Proxy.Config[0]
	if l.ListenAddr != "127.0.0.1:9088" || l.User != "root" || l.Password != "root-secret" || l.DB != "test" {
		t.Errorf("listener = %+v", l)
	}
	wantPool := Pool{MaxOpen: 64, MaxIdle: 64, IdleTimeout: D(5 * time.Minute), MaxLifetime: D(time.Hour),
		WaitTimeout: D(5 * time.Second), ConnectTimeout: D(5 * time.Second)}
	if l.Pool != wantPool {
		t.Errorf("pool = %+v, want %+v", l.Pool, wantPool)
	}
	n := cfg.MySQL.Nodes[0]
	if n.Addr() != "127.0.0.1:3306" || n.User != "root" || n.Password != "" || n.DB != "test" || n.Role != RoleReadWrite || n.EffectiveWeight() != 1 {
		t.Errorf("node = %+v", n)
	}
	if got := l.NodeNames(cfg); !reflect.DeepEqual(got, []string{"ds001"}) {
		t.Errorf("NodeNames = %v", got)
	}
	if cfg.Admin.LogLevel != "INFO" {
		t.Errorf("log level = %q", cfg.Admin.LogLevel)
	}
}

func TestParsePisanixStyle(t *testing.T) {
	cfg := mustParse(t, minimalPisanix, TOML)
	l := cfg.Proxy.Config[0]
	if l.Pool.MaxOpen != DefaultPoolMaxOpen || l.Pool.MaxIdle != 3 {
		t.Errorf("pool_size should become max_idle (Pisanix's idle queue capacity), max_open the default; got %+v", l.Pool)
	}
	if l.ServerVersion != "5.7.37" || l.Strategy != "simple_balance" {
		t.Errorf("defaults: server_version %q strategy %q", l.ServerVersion, l.Strategy)
	}

	cfg, err := Load("testdata/pisanix.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.LogLevel != "INFO" {
		t.Errorf("log_level should be upper-cased, got %q", cfg.Admin.LogLevel)
	}
	if cfg.Version != "v0.3.2" {
		t.Errorf("version = %q", cfg.Version)
	}
	rw := cfg.Proxy.Config[0]
	if rw.SimpleLoadBalance.BalanceType != BalanceRoundRobin {
		t.Errorf("balance_type = %q", rw.SimpleLoadBalance.BalanceType)
	}
	rules := rw.ReadWriteSplitting.Static.Rules
	if len(rules) != 2 || rules[0].Kind() != RuleRegex || rules[1].Kind() != RuleGeneric || rules[1].AlgorithmName != BalanceRoundRobin {
		t.Errorf("rules = %+v", rules)
	}
	if pl := rw.Plugin; len(pl.ConcurrencyControl) != 1 || pl.ConcurrencyControl[0].Duration != 333 ||
		pl.ConcurrencyControl[0].MaxConcurrency != 5 || !pl.CircuitBreak[0].CaseInsensitive {
		t.Errorf("plugin = %+v", pl)
	}
	d := cfg.Proxy.Config[1].ReadWriteSplitting.Dynamic
	if d.DefaultTarget != RoleRead || d.Discovery.MaxReplicationLag != 10000 || d.Discovery.User != "monitor" ||
		!d.Discovery.ReadOnlyMonitorEnabled() || d.Discovery.ReplicationLagMonitorEnabled() {
		t.Errorf("dynamic = %+v discovery = %+v", d, d.Discovery)
	}
	sh := cfg.Proxy.Config[2].Sharding
	if len(sh) != 2 || sh[0].DatabaseTableStrategy == nil || sh[0].DatabaseTableStrategy.ShardingCount != 4 ||
		sh[1].TableStrategy == nil || sh[1].TableStrategy.TableShardingColumn != "id" {
		t.Errorf("sharding = %+v", sh)
	}
	if got := cfg.NodeGroup.Members; len(got) != 1 || got[0].ReadWrite != "ds002" || !reflect.DeepEqual(got[0].Reads, []string{"ds001"}) {
		t.Errorf("node_group = %+v", got)
	}
	if n := cfg.Node("ds002"); n == nil || n.EffectiveWeight() != 2 || n.Port != 3306 {
		t.Errorf("ds002 = %+v", n)
	}
	if cfg.Node("nope") != nil {
		t.Error("Node(nope) should be nil")
	}
}

func TestJSONControllerShape(t *testing.T) {
	fromJSON, err := Load("testdata/controller.json")
	if err != nil {
		t.Fatal(err)
	}
	fromTOML, err := Load("testdata/controller.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, fromTOML) {
		a, _ := json.MarshalIndent(fromJSON, "", " ")
		b, _ := json.MarshalIndent(fromTOML, "", " ")
		t.Fatalf("JSON and TOML decode differently:\n%s\n---\n%s", a, b)
	}
	l := fromJSON.Proxy.Config[0]
	if l.ReadWriteSplitting.Dynamic.Discovery.MaxReplicationLag != 3 || l.Pool.MaxIdle != 3 {
		t.Errorf("listener = %+v", l)
	}
	// The controller never emits read_only_enabled/replication_lag_enabled.
	if !l.ReadWriteSplitting.Dynamic.Discovery.ReadOnlyMonitorEnabled() || !l.ReadWriteSplitting.Dynamic.Discovery.ReplicationLagMonitorEnabled() {
		t.Error("monitors should default to enabled")
	}
	if got := l.NodeNames(fromJSON); !reflect.DeepEqual(got, []string{"dbep-rw", "dbep-ro"}) {
		t.Errorf("NodeNames = %v", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		doc    string
		want   []string // substrings, in order, one per error line
	}{
		{"toml unknown key", TOML, "[admin]\nport = 5591\n\n[[proxy.config]]\nname = \"a\"\n[proxy.config.pool]\nmax_opn = 3\n",
			[]string{`line 7: unknown key "proxy.config.pool.max_opn"`}},
		{"toml several unknown keys", TOML, "adminn = 1\n[[mysql.node]]\nname = \"x\"\nprot = 1\n",
			[]string{`line 1: unknown key "adminn"`, `line 4: unknown key "mysql.node.prot"`}},
		{"toml type mismatch", TOML, "[admin]\nport = 1\n\n\n\n[[proxy.config]]\npool_size = \"3\"\n",
			[]string{`line 7: key "proxy.config.pool_size": cannot decode string into int`}},
		{"toml bool mismatch", TOML, "[[mysql.node]]\nname = \"x\"\n[mysql.node.tls]\nenabled = \"yes\"\n",
			[]string{`line 4: key "mysql.node.tls.enabled": cannot decode string into bool`}},
		{"toml duration as number", TOML, "[[proxy.config]]\n[proxy.config.pool]\nidle_timeout = 5\n",
			[]string{`line 3: key "proxy.config.pool.idle_timeout": invalid duration 5`}},
		{"toml bad duration string", TOML, "[[proxy.config]]\nidle_client_timeout = \"5 minutes\"\n",
			[]string{`line 2: key "proxy.config.idle_client_timeout": invalid duration "5 minutes"`}},
		{"toml syntax", TOML, "[admin\nport = 1\n", []string{"line 1: "}},
		{"json unknown key", JSON, "{\"admin\": {\"port\": 1},\n \"proxy\": {\"config\": [{\"name\": \"a\",\n  \"pool\": {\"max_opn\": 3}}]}}",
			[]string{`line 3: unknown key "proxy.config[0].pool.max_opn"`}},
		{"json type mismatch", JSON, "{\"proxy\": {\"config\": [\n{\"pool_size\": \"3\"}]}}",
			[]string{`line 2: key "proxy.config.pool_size": cannot decode string into int (offset`}},
		{"json duration as number", JSON, "{\"proxy\": {\"config\": [\n{\"idle_client_timeout\": 5}]}}",
			[]string{`line 2: key "proxy.config[0].idle_client_timeout": invalid duration 5`}},
		{"json syntax", JSON, "{\"admin\": {\n\"port\": 1,}}", []string{"line 2: invalid character '}'"}},
		{"json trailing data", JSON, "{} []", []string{"unexpected data after the top-level JSON value"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), tt.format)
			if err == nil {
				t.Fatal("want an error")
			}
			var de *DecodeErrors
			if !errors.As(err, &de) {
				t.Fatalf("want *DecodeErrors, got %T: %v", err, err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d error lines, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("error line %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
		})
	}
}

func TestLoadPrefixesFileName(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "proxy.toml")
	if err := os.WriteFile(p, []byte("[[proxy.config]]\nlisten_addr = \"127.0.0.1:1\"\npoolsize = 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || err.Error() != p+`: line 3: unknown key "proxy.config.poolsize"` {
		t.Fatalf("err = %v", err)
	}

	if err := os.WriteFile(p, []byte("[admin]\nport = 0\n[[proxy.config]]\nlisten_addr = \"x\"\nuser = \"u\"\npassword = \"p\"\n[[mysql.node]]\nname=\"a\"\nuser=\"u\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(p)
	var ve *ValidationError
	if !errors.As(err, &ve) || !strings.HasPrefix(err.Error(), p+": invalid configuration: proxy.config[0].listen_addr") {
		t.Fatalf("err = %v", err)
	}

	// .json extension selects JSON.
	pj := filepath.Join(dir, "proxy.json")
	if err := os.WriteFile(pj, []byte(`{"mysql": {"node": [{"name": "a", "user": "u"}]}, "proxy": {"config": [{"listen_addr": "127.0.0.1:0", "user": "u", "password": "p"}]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(pj)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MySQL.Nodes[0].Addr() != "127.0.0.1:3306" {
		t.Errorf("addr = %s", cfg.MySQL.Nodes[0].Addr())
	}

	if _, err := Load(filepath.Join(dir, "missing.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	doc := `
[admin]
port = 70000
log_level = "verbose"

[[proxy.config]]
name = "a"
listen_addr = "127.0.0.1:9088"
backend_type = "postgres"
[proxy.config.simple_loadbalance]
balance_type = "weighted"
nodes = ["ds001", "ghost"]
[proxy.config.pool]
max_open = 4
max_idle = 8
wait_timeout = "-1s"
[proxy.config.tls]
cert_file = "/nonexistent/cert.pem"
min_version = "1.1"
[[proxy.config.users]]
user = ""
[[proxy.config.users]]
user = "app"
[[proxy.config.users]]
user = "app"

[[proxy.config]]
name = "a"
listen_addr = "127.0.0.1:9088"
[proxy.config.read_write_splitting.static]
default_target = "write"
[[proxy.config.read_write_splitting.static.rule]]
name = "bad"
regex = ["(unclosed"]
target = "primary"
algorithm_name = "fastest"
[[proxy.config.read_write_splitting.dynamic.rule]]
name = "g"
type = "generic"
[proxy.config.read_write_splitting.dynamic.discovery]
type = "orchestrator"
user = "m"
[[proxy.config.plugin.circuit_break]]
regex = ["[z-a]"]
[[proxy.config.sharding]]
table_name = "t"
actual_datanodes = ["ds001"]
[proxy.config.sharding.table_strategy]
table_sharding_algorithm_name = "hash"
table_sharding_column = "id"
sharding_count = 2

[[mysql.node]]
name = "ds001"
user = "root"
port = 0
weight = -1
role = "writer"
[[mysql.node]]
name = "ds001"
user = "root"
port = 99999
`
	_, err := Parse([]byte(doc), TOML)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %T: %v", err, err)
	}
	want := []string{
		"admin.port: must be between 1 and 65535",
		"admin.log_level: must be one of",
		"mysql.node[0].weight: must be >= 0",
		"mysql.node[0].role: must be",
		"mysql.node[1].name: duplicate node name",
		"mysql.node[1].port: must be between 1 and 65535, got 99999",
		"proxy.config[0].backend_type: must be \"mysql\"",
		"proxy.config[0].users[0].user: must not be empty",
		"proxy.config[0].users[2].user: duplicate user",
		"proxy.config[0].tls.key_file: must be set together with cert_file",
		"proxy.config[0].tls.cert_file: cannot read",
		"proxy.config[0].tls.min_version",
		"proxy.config[0].pool.max_idle: (8) must not exceed max_open (4)",
		"proxy.config[0].pool.wait_timeout: must not be negative",
		"proxy.config[0].simple_loadbalance.balance_type",
		"proxy.config[0].simple_loadbalance.nodes[1]: unknown node \"ghost\"",
		"proxy.config[1].name: duplicate listener name",
		"proxy.config[1].listen_addr: address \"127.0.0.1:9088\" is already used by proxy.config[0]",
		"proxy.config[1].read_write_splitting.static.default_target",
		"proxy.config[1].read_write_splitting.static.rule[0].target",
		"proxy.config[1].read_write_splitting.static.rule[0].regex[0]: invalid regular expression",
		"proxy.config[1].read_write_splitting.static.rule[0].algorithm_name",
		"proxy.config[1].read_write_splitting.dynamic.discovery.type: must be \"mha\"",
		"proxy.config[1].plugin.circuit_break[0].regex[0]: invalid regular expression",
		"proxy.config[1].sharding[0].table_strategy.table_sharding_algorithm_name",
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("missing problem %q", w)
		}
	}
	// mysql.node[0].port 0 is defaulted to 3306, so it is not a problem.
	if strings.Contains(msg, "mysql.node[0].port") {
		t.Errorf("unexpected port problem for node 0")
	}
	if len(ve.Problems) < len(want) {
		t.Errorf("got %d problems, want at least %d:\n%s", len(ve.Problems), len(want), msg)
	}
	if t.Failed() {
		t.Log(msg)
	}
}

func TestValidateCases(t *testing.T) {
	base := func() *Config {
		w := 1
		c := &Config{
			Proxy: Proxy{Config: []Listener{{Name: "l", ListenAddr: "127.0.0.1:3307", User: "app", Password: "pw"}}},
			MySQL: MySQL{Nodes: []Node{{Name: "ds001", User: "root", Weight: &w}}},
		}
		return c
	}
	dir := t.TempDir()
	certFile := filepath.Join(dir, "c.pem")
	keyFile := filepath.Join(dir, "k.pem")
	for _, f := range []string{certFile, keyFile} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string // "" = valid
	}{
		{"valid", func(c *Config) {}, ""},
		{"ipv6 listen", func(c *Config) { c.Proxy.Config[0].ListenAddr = "[::1]:3307" }, ""},
		{"ephemeral ports may repeat", func(c *Config) {
			c.Proxy.Config[0].ListenAddr = "127.0.0.1:0"
			c.Proxy.Config = append(c.Proxy.Config, Listener{ListenAddr: "127.0.0.1:0", AllowPasswordless: true})
		}, ""},
		{"no account", func(c *Config) { c.Proxy.Config[0].User, c.Proxy.Config[0].Password = "", "" },
			"proxy.config[0].user: no account: without user/password the listener accepts anyone"},
		{"no account, opted in", func(c *Config) {
			c.Proxy.Config[0].User, c.Proxy.Config[0].Password = "", ""
			c.Proxy.Config[0].AllowPasswordless = true
		}, ""},
		{"empty password", func(c *Config) { c.Proxy.Config[0].Password = "" },
			`proxy.config[0].password: user "app" has no password`},
		{"extra user without password", func(c *Config) { c.Proxy.Config[0].Users = []ListenerUser{{User: "x"}} },
			`proxy.config[0].users[0].password: user "x" has no password`},
		{"user name too long", func(c *Config) { c.Proxy.Config[0].User = strings.Repeat("u", 129) },
			"proxy.config[0].user: user name of 129 characters: MariaDB allows 128"},
		{"backend accounts only", func(c *Config) {
			c.Proxy.Config[0].User, c.Proxy.Config[0].Password = "", ""
			c.Proxy.Config[0].BackendAccounts = true
		}, ""},
		{"extra users only", func(c *Config) {
			c.Proxy.Config[0].User, c.Proxy.Config[0].Password = "", ""
			c.Proxy.Config[0].Users = []ListenerUser{{User: "x", Password: "y"}}
		}, ""},
		{"max_allowed_packet too small", func(c *Config) { c.Proxy.Config[0].MaxAllowedPacket = 10 },
			"max_allowed_packet: must be between 1024 and 1073741824"},
		{"max_allowed_packet over the memory budget", func(c *Config) {
			c.Proxy.Config[0].MaxAllowedPacket = 64 << 20
			c.Proxy.MaxPacketMemory = 32 << 20
		}, "must not exceed proxy.max_packet_memory"},
		{"negative idle transaction timeout", func(c *Config) { c.Proxy.Config[0].IdleTransactionTimeout = D(-time.Second) },
			"idle_transaction_timeout: must not be negative"},
		{"negative max_handshakes", func(c *Config) { c.Proxy.Config[0].MaxHandshakes = -1 }, "max_handshakes: must be >= 0"},
		{"same port different spelling", func(c *Config) {
			c.Proxy.Config[0].ListenAddr = "[::1]:3307"
			c.Proxy.Config = append(c.Proxy.Config, Listener{ListenAddr: "[0:0::1]:3307"})
		}, "proxy.config[1].listen_addr: address"},
		{"bad port", func(c *Config) { c.Proxy.Config[0].ListenAddr = "127.0.0.1:http" }, "proxy.config[0].listen_addr: invalid port"},
		{"no nodes", func(c *Config) { c.MySQL.Nodes = nil }, "mysql.node: at least one"},
		{"no nodes without listener is fine", func(c *Config) { c.MySQL.Nodes = nil; c.Proxy.Config = nil }, ""},
		{"all weights zero", func(c *Config) { *c.MySQL.Nodes[0].Weight = 0 }, "mysql.node: every node has weight 0"},
		{"listener subset all drained", func(c *Config) {
			z := 0
			c.MySQL.Nodes = append(c.MySQL.Nodes, Node{Name: "ds002", User: "u", Weight: &z})
			c.Proxy.Config[0].SimpleLoadBalance = &SimpleLoadBalance{Nodes: []string{"ds002"}}
		}, "proxy.config[0].simple_loadbalance.nodes: every node of this listener has weight 0"},
		{"drained node ok", func(c *Config) {
			z := 0
			c.MySQL.Nodes = append(c.MySQL.Nodes, Node{Name: "ds002", User: "u", Weight: &z})
		}, ""},
		{"empty node name", func(c *Config) { c.MySQL.Nodes[0].Name = "" }, "mysql.node[0].name: must not be empty"},
		{"transaction_mode without sharding", func(c *Config) { c.Proxy.Config[0].TransactionMode = TransactionModeXA },
			"proxy.config[0].transaction_mode: applies to sharding listeners only"},
		{"unknown transaction_mode", func(c *Config) {
			c.Proxy.Config[0].Sharding = []Sharding{{TableName: "t", ActualDatanodes: []string{"ds001"},
				DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"}}}
			c.Proxy.Config[0].TransactionMode = "2pc"
		}, `proxy.config[0].transaction_mode: must be "xa" or "best_effort", got "2pc"`},
		{"best_effort transaction_mode", func(c *Config) {
			c.Proxy.Config[0].Sharding = []Sharding{{TableName: "t", ActualDatanodes: []string{"ds001"},
				DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"}}}
			c.Proxy.Config[0].TransactionMode = TransactionModeBestEffort
			c.MySQL.Nodes[0].DB = "test"
		}, ""},
		{"broadcast table that is sharded", func(c *Config) {
			c.MySQL.Nodes[0].DB = "test"
			c.Proxy.Config[0].Sharding = []Sharding{{TableName: "t", ActualDatanodes: []string{"ds001"},
				DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"},
				BroadcastTables:  []string{"d", "t", "d"}}}
		}, `proxy.config[0].sharding[0].broadcast_tables[1]: "t" is a sharded table (sharding[0])`},
		{"broadcast table twice", func(c *Config) {
			c.MySQL.Nodes[0].DB = "test"
			c.Proxy.Config[0].Sharding = []Sharding{{TableName: "t", ActualDatanodes: []string{"ds001"},
				DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"},
				BroadcastTables:  []string{"d", "d"}}}
		}, `proxy.config[0].sharding[0].broadcast_tables[1]: "d" is already a broadcast table of sharding[0]`},
		{"binding table without a rule", func(c *Config) {
			c.MySQL.Nodes[0].DB = "test"
			c.Proxy.Config[0].Sharding = []Sharding{{TableName: "t", ActualDatanodes: []string{"ds001"},
				DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"},
				BindingTables:    []string{"t_item"}}}
		}, `proxy.config[0].sharding[0].binding_tables[0]: "t_item" has no [[proxy.config.sharding]] rule`},
		{"binding table sharded otherwise", func(c *Config) {
			c.MySQL.Nodes[0].DB = "test"
			c.Proxy.Config[0].Sharding = []Sharding{{TableName: "t", ActualDatanodes: []string{"ds001"},
				DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"},
				BindingTables:    []string{"t_item"}},
				{TableName: "t_item", ActualDatanodes: []string{"ds001"},
					DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "crc32mod", DatabaseShardingColumn: "order_id"}}}
		}, `proxy.config[0].sharding[0].binding_tables[0]: "t_item" is not sharded like t`},
		{"binding table", func(c *Config) {
			c.MySQL.Nodes[0].DB = "test"
			c.Proxy.Config[0].Sharding = []Sharding{{TableName: "t", ActualDatanodes: []string{"ds001"},
				DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"},
				BindingTables:    []string{"t_item"}},
				{TableName: "t_item", ActualDatanodes: []string{"ds001"},
					DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "order_id"}}}
		}, ""},
		{"key generator", func(c *Config) {
			c.MySQL.Nodes[0].DB = "test"
			c.Proxy.Config[0].Sharding = []Sharding{{TableName: "t", ActualDatanodes: []string{"ds001"},
				DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"},
				KeyGenerator:     &KeyGenerator{Type: "snowflake", WorkerID: new(3)}}}
		}, ""},
		{"key generator type", func(c *Config) {
			c.MySQL.Nodes[0].DB = "test"
			c.Proxy.Config[0].Sharding = []Sharding{{TableName: "t", ActualDatanodes: []string{"ds001"},
				DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"},
				KeyGenerator:     &KeyGenerator{Type: "uuid", WorkerID: new(1024)}}}
		}, `proxy.config[0].sharding[0].key_generator.type: must be "snowflake", got "uuid"`},
		{"key generator worker id", func(c *Config) {
			c.MySQL.Nodes[0].DB = "test"
			c.Proxy.Config[0].Sharding = []Sharding{{TableName: "t", ActualDatanodes: []string{"ds001"},
				DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"},
				KeyGenerator:     &KeyGenerator{Type: "snowflake", WorkerID: new(1024)}}}
		}, `proxy.config[0].sharding[0].key_generator.worker_id: must be between 0 and 1023, got 1024`},
		{"key generator without worker id", func(c *Config) {
			c.MySQL.Nodes[0].DB = "test"
			c.Proxy.Config[0].Sharding = []Sharding{{TableName: "t", ActualDatanodes: []string{"ds001"},
				DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"},
				KeyGenerator:     &KeyGenerator{Type: "snowflake"}}}
		}, `proxy.config[0].sharding[0].key_generator.worker_id: not set, and proxy.key_worker_id is not set either`},
		{"key generator with the proxy's worker id", func(c *Config) {
			c.MySQL.Nodes[0].DB = "test"
			c.Proxy.KeyWorkerID = new(1023)
			c.Proxy.Config[0].Sharding = []Sharding{{TableName: "t", ActualDatanodes: []string{"ds001"},
				DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"},
				KeyGenerator:     &KeyGenerator{Type: "snowflake"}}}
		}, ""},
		{"proxy key_worker_id out of range", func(c *Config) { c.Proxy.KeyWorkerID = new(1024) },
			`proxy.key_worker_id: must be between 0 and 1023, got 1024`},
		{"key generator column", func(c *Config) {
			c.MySQL.Nodes[0].DB = "test"
			c.Proxy.Config[0].Sharding = []Sharding{{TableName: "t", ActualDatanodes: []string{"ds001"},
				DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"},
				KeyGenerator:     &KeyGenerator{Type: "snowflake", Column: "uid", WorkerID: new(0)}}}
		}, `proxy.config[0].sharding[0].key_generator.column: "uid" is not a sharding column of t (id)`},
		{"bad xa proxy_id", func(c *Config) { c.Proxy.XA.ProxyID = "a b" }, `proxy.xa.proxy_id: must be 1 to 32 of`},
		{"xa proxy_id too long", func(c *Config) { c.Proxy.XA.ProxyID = strings.Repeat("p", 33) }, `proxy.xa.proxy_id: must be 1 to 32 of`},
		{"negative xa recovery_interval", func(c *Config) { c.Proxy.XA.RecoveryInterval = D(-time.Second) }, "proxy.xa.recovery_interval: must be >= 0"},
		{"negative xa log_max_bytes", func(c *Config) { c.Proxy.XA.LogMaxBytes = -1 }, "proxy.xa.log_max_bytes: must be >= 0"},
		{"shardingsphere unsupported", func(c *Config) { c.Proxy.Config[0].BackendType = BackendShardingSphereProxy },
			`proxy.config[0].backend_type: "shardingsphere-proxy" is not supported`},
		{"tls pair ok", func(c *Config) {
			c.Proxy.Config[0].TLS = ListenerTLS{CertFile: certFile, KeyFile: keyFile, Required: true, MinVersion: "1.3"}
		}, ""},
		{"tls key only", func(c *Config) { c.Proxy.Config[0].TLS.KeyFile = keyFile }, "proxy.config[0].tls.cert_file: must be set together with key_file"},
		{"node tls ca missing", func(c *Config) { c.MySQL.Nodes[0].TLS = NodeTLS{Enabled: true, CAFile: filepath.Join(dir, "nope")} },
			"mysql.node[0].tls.ca_file: cannot read"},
		{"node tls dir", func(c *Config) { c.MySQL.Nodes[0].TLS = NodeTLS{Enabled: true, CAFile: dir} }, "is a directory"},
		{"node tls mode", func(c *Config) { c.MySQL.Nodes[0].TLS = NodeTLS{Mode: "disabled"} }, ""},
		{"node tls bad mode", func(c *Config) { c.MySQL.Nodes[0].TLS = NodeTLS{Mode: "optional"} },
			`mysql.node[0].tls.mode: must be "preferred", "required" or "disabled", got "optional"`},
		{"node tls mode contradicts enabled", func(c *Config) { c.MySQL.Nodes[0].TLS = NodeTLS{Mode: "disabled", Enabled: true} },
			`mysql.node[0].tls.mode: "disabled" contradicts enabled = true`},
		{"rw without readwrite node starts (reads only, warned)", func(c *Config) {
			c.MySQL.Nodes[0].Role = RoleRead
			c.Proxy.Config[0].ReadWriteSplitting = &ReadWriteSplitting{Static: &RWSplittingStatic{}}
		}, ""},
		{"rw unknown node", func(c *Config) {
			c.Proxy.Config[0].ReadWriteSplitting = &ReadWriteSplitting{Static: &RWSplittingStatic{}, Nodes: []string{"nope"}}
		}, `proxy.config[0].read_write_splitting.nodes[0]: unknown node "nope"`},
		{"rw empty", func(c *Config) { c.Proxy.Config[0].ReadWriteSplitting = &ReadWriteSplitting{} },
			"read_write_splitting: needs a static or dynamic section"},
		{"dynamic without discovery", func(c *Config) {
			c.Proxy.Config[0].ReadWriteSplitting = &ReadWriteSplitting{Dynamic: &RWSplittingDynamic{}}
		}, "read_write_splitting.dynamic.discovery: is required"},
		{"regex rule without regex", func(c *Config) {
			c.Proxy.Config[0].ReadWriteSplitting = &ReadWriteSplitting{Static: &RWSplittingStatic{Rules: []Rule{{Type: "regex", Target: "read"}}}}
		}, "rule[0].regex: a regex rule needs at least one regex"},
		{"generic rule with regex", func(c *Config) {
			c.Proxy.Config[0].ReadWriteSplitting = &ReadWriteSplitting{Static: &RWSplittingStatic{Rules: []Rule{{Type: "generic", Regex: []string{"x"}}}}}
		}, "rule[0].regex: not allowed on a generic rule"},
		{"regex rule inferred, missing target", func(c *Config) {
			c.Proxy.Config[0].ReadWriteSplitting = &ReadWriteSplitting{Static: &RWSplittingStatic{Rules: []Rule{{Regex: []string{"x"}}}}}
		}, "rule[0].target: a regex rule needs a target"},
		{"unknown node group in rule", func(c *Config) {
			c.Proxy.Config[0].ReadWriteSplitting = &ReadWriteSplitting{Static: &RWSplittingStatic{Rules: []Rule{{Regex: []string{"x"}, Target: "read", NodeGroupName: []string{"g"}}}}}
		}, `node_group_name[0]: unknown node group "g"`},
		{"node group refs", func(c *Config) {
			c.NodeGroup.Members = []NodeGroupMember{{Name: "g", ReadWrite: "nope", Reads: []string{"ds001", "nope2"}}}
		}, `node_group.member[0].reads[1]: unknown node "nope2"`},
		{"sharding datanode is node group with rw", func(c *Config) {
			c.MySQL.Nodes[0].DB = "shop"
			c.NodeGroup.Members = []NodeGroupMember{{Name: "g", ReadWrite: "ds001"}}
			c.Proxy.Config[0].ReadWriteSplitting = &ReadWriteSplitting{Static: &RWSplittingStatic{}}
			c.Proxy.Config[0].Sharding = []Sharding{{TableName: "t", ActualDatanodes: []string{"g"},
				DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "crc32mod", DatabaseShardingColumn: "id"}}}
		}, ""},
		{"sharding datanode without db", func(c *Config) {
			c.Proxy.Config[0].Sharding = []Sharding{{TableName: "t", ActualDatanodes: []string{"ds001"},
				DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"}}}
		}, `sharding[0].actual_datanodes[0]: datanode "ds001" has no db`},
		{"two sharding datanodes on one database", func(c *Config) {
			c.MySQL.Nodes[0].DB = "shop"
			c.MySQL.Nodes = append(c.MySQL.Nodes, Node{Name: "ds002", User: "root", DB: "shop"})
			c.Proxy.Config[0].Sharding = []Sharding{{TableName: "t", ActualDatanodes: []string{"ds001", "ds002"},
				DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"}}}
		}, `sharding[0].actual_datanodes[1]: datanode "ds002" is the same database (127.0.0.1:3306/shop) as actual_datanodes[0]`},
		{"more tables on a node than connections", func(c *Config) {
			c.MySQL.Nodes[0].DB = "shop"
			c.Proxy.Config[0].Pool.MaxOpen = 2
			c.Proxy.Config[0].Sharding = []Sharding{{TableName: "t", ActualDatanodes: []string{"ds001"},
				TableStrategy: &TableStrategy{TableShardingAlgorithmName: "mod", TableShardingColumn: "id", ShardingCount: 4}}}
		}, `sharding[0]: sharding_count 4 is more than pool.max_open 2`},
		{"two rules for one table", func(c *Config) {
			c.MySQL.Nodes[0].DB = "shop"
			r := Sharding{TableName: "t", ActualDatanodes: []string{"ds001"},
				TableStrategy: &TableStrategy{TableShardingAlgorithmName: "mod", TableShardingColumn: "id", ShardingCount: 2}}
			c.Proxy.Config[0].Sharding = []Sharding{r, r}
		}, `sharding[1].table_name: table "t" already has a rule (proxy.config[0].sharding[0])`},
		{"two strategies", func(c *Config) {
			c.Proxy.Config[0].Sharding = []Sharding{{TableName: "t", ActualDatanodes: []string{"ds001"},
				DatabaseStrategy: &DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"},
				TableStrategy:    &TableStrategy{TableShardingAlgorithmName: "mod", TableShardingColumn: "id", ShardingCount: 2}}}
		}, "sharding[0]: only one of"},
		{"concurrency negative", func(c *Config) {
			c.Proxy.Config[0].Plugin = &Plugin{ConcurrencyControl: []ConcurrencyControl{{MatchSpec: MatchSpec{Regex: []string{"x"}}, Duration: -1}}}
		}, "concurrency_control[0].duration: must be >= 0 seconds"},
		{"user equals listener user", func(c *Config) {
			c.Proxy.Config[0].User = "root"
			c.Proxy.Config[0].Users = []ListenerUser{{User: "root"}}
		}, `users[0].user: duplicate user "root" (also proxy.config[0].user)`},
		{"negative idle client timeout", func(c *Config) { c.Proxy.Config[0].IdleClientTimeout = D(-time.Second) },
			"idle_client_timeout: must not be negative"},
		{"negative max connections", func(c *Config) { c.Proxy.Config[0].MaxConnections = -1 }, "max_connections: must be >= 0"},
		{"admin host", func(c *Config) { c.Admin.Host = "not a host" }, "admin.host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mutate(c)
			c.ApplyDefaults()
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("want error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	cfg := mustParse(t, `
[[proxy.config]]
pool_size = 10
user = "app"
password = "pw"
[proxy.config.read_write_splitting.dynamic.discovery]
user = "m"
[[proxy.config.read_write_splitting.dynamic.rule]]
regex = ["^select"]
target = "read"

[[proxy.config]]
listen_addr = "127.0.0.1:3307"
allow_passwordless = true
[proxy.config.pool]
max_open = 20
max_idle = 5
idle_timeout = "30s"

[[mysql.node]]
name = "a"
user = "u"

[[mysql.node]]
name = "b"
user = "u"
host = "::1"
port = 3310
weight = 0
role = "read"
`, TOML)
	if cfg.Admin != (Admin{Host: "127.0.0.1", Port: 5591, LogLevel: "INFO"}) {
		t.Errorf("admin = %+v", cfg.Admin)
	}
	l0 := cfg.Proxy.Config[0]
	if l0.ListenAddr != "0.0.0.0:3306" || l0.BackendType != "mysql" || l0.ServerVersion != "5.7.37" || l0.TLS.MinVersion != "1.2" {
		t.Errorf("listener defaults = %+v", l0)
	}
	// read_write_splitting given: no implicit simple_loadbalance.
	if l0.SimpleLoadBalance != nil {
		t.Errorf("simple_loadbalance should stay nil, got %+v", l0.SimpleLoadBalance)
	}
	wantPool := Pool{MaxOpen: DefaultPoolMaxOpen, MaxIdle: 10, IdleTimeout: D(5 * time.Minute), MaxLifetime: D(time.Hour),
		WaitTimeout: D(5 * time.Second), ConnectTimeout: D(5 * time.Second)}
	if l0.Pool != wantPool {
		t.Errorf("pool = %+v, want %+v", l0.Pool, wantPool)
	}
	dyn := l0.ReadWriteSplitting.Dynamic
	if dyn.DefaultTarget != "readwrite" || dyn.Rules[0].AlgorithmName != "random" {
		t.Errorf("dynamic = %+v", dyn)
	}
	disc := *dyn.Discovery
	if disc.Type != "mha" || disc.MonitorPeriod != 1000 || disc.PingTimeout != 6000 || disc.ReadOnlyFailureThreshold != 1 ||
		disc.MaxReplicationLag != 10000 || !disc.ReadOnlyMonitorEnabled() || !disc.ReplicationLagMonitorEnabled() {
		t.Errorf("discovery = %+v", disc)
	}

	l1 := cfg.Proxy.Config[1]
	if l1.SimpleLoadBalance == nil || l1.SimpleLoadBalance.BalanceType != "random" {
		t.Errorf("implicit simple_loadbalance = %+v", l1.SimpleLoadBalance)
	}
	if l1.Pool.MaxOpen != 20 || l1.Pool.MaxIdle != 5 || l1.Pool.IdleTimeout.Duration != 30*time.Second {
		t.Errorf("pool = %+v", l1.Pool)
	}

	a, b := cfg.MySQL.Nodes[0], cfg.MySQL.Nodes[1]
	if a.Host != "127.0.0.1" || a.Port != 3306 || a.EffectiveWeight() != 1 || a.Role != "readwrite" {
		t.Errorf("node a = %+v", a)
	}
	if b.EffectiveWeight() != 0 || b.Role != "read" || b.Addr() != "[::1]:3310" {
		t.Errorf("node b = %+v (addr %s)", b, b.Addr())
	}

	// Idempotent.
	before := cfg.Clone()
	cfg.ApplyDefaults()
	if !reflect.DeepEqual(before, cfg) {
		t.Error("ApplyDefaults is not idempotent")
	}
	if (Node{}).EffectiveWeight() != 1 {
		t.Error("nil weight should be 1")
	}
}

func TestNodeNames(t *testing.T) {
	cfg := &Config{MySQL: MySQL{Nodes: []Node{{Name: "a"}, {Name: "b"}, {Name: "c"}}},
		ShardingSphereProxy: MySQL{Nodes: []Node{{Name: "ss"}}}}
	tests := []struct {
		l    Listener
		want []string
	}{
		{Listener{}, []string{"a", "b", "c"}},
		{Listener{SimpleLoadBalance: &SimpleLoadBalance{}}, []string{"a", "b", "c"}},
		{Listener{SimpleLoadBalance: &SimpleLoadBalance{Nodes: []string{"c", "a", "c"}}}, []string{"c", "a"}},
		{Listener{BackendType: BackendShardingSphereProxy}, []string{"ss"}},
	}
	for i, tt := range tests {
		if got := tt.l.NodeNames(cfg); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%d: NodeNames = %v, want %v", i, got, tt.want)
		}
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"5s", 5 * time.Second, true},
		{"250ms", 250 * time.Millisecond, true},
		{"1h30m", 90 * time.Minute, true},
		{"0", 0, true},
		{"0s", 0, true},
		{"-1s", -time.Second, true}, // parses; Validate rejects negatives
		{"5", 0, false},
		{"", 0, false},
		{"five seconds", 0, false},
	}
	for _, tt := range tests {
		var d Duration
		err := d.UnmarshalText([]byte(tt.in))
		if (err == nil) != tt.ok || (tt.ok && d.Duration != tt.want) {
			t.Errorf("UnmarshalText(%q) = %v, %v", tt.in, d.Duration, err)
		}
	}

	type doc struct {
		D Duration `toml:"d" json:"d"`
	}
	in := doc{D: D(1500 * time.Millisecond)}
	tb, err := toml.Marshal(in)
	if err != nil || strings.TrimSpace(string(tb)) != `d = '1.5s'` && strings.TrimSpace(string(tb)) != `d = "1.5s"` {
		t.Errorf("toml.Marshal = %q, %v", tb, err)
	}
	var outT doc
	if err := toml.Unmarshal(tb, &outT); err != nil || outT != in {
		t.Errorf("toml round trip = %+v, %v", outT, err)
	}
	jb, err := json.Marshal(in)
	if err != nil || string(jb) != `{"d":"1.5s"}` {
		t.Errorf("json.Marshal = %s, %v", jb, err)
	}
	var outJ doc
	if err := json.Unmarshal(jb, &outJ); err != nil || outJ != in {
		t.Errorf("json round trip = %+v, %v", outJ, err)
	}
	if err := json.Unmarshal([]byte(`{"d": 5}`), &outJ); err == nil {
		t.Error("json number should be rejected")
	}
	if err := json.Unmarshal([]byte(`{"d": null}`), &outJ); err != nil {
		t.Errorf("json null: %v", err)
	}
}

func TestRedacted(t *testing.T) {
	cfg, err := Load("testdata/pisanix.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Proxy.Config[0].Users = []ListenerUser{{User: "app", Password: "app-pw"}}
	orig := cfg.Clone()
	r := cfg.Redacted()

	if !reflect.DeepEqual(cfg, orig) {
		t.Fatal("Redacted modified the original")
	}
	b, _ := json.Marshal(r)
	for _, secret := range []string{"12345678", "monitor-pw", "root\"", "app-pw"} {
		if strings.Contains(string(b), `"password":"`+strings.TrimSuffix(secret, `"`)+`"`) {
			t.Errorf("redacted config still contains password %q", secret)
		}
	}
	if r.Proxy.Config[0].Password != RedactedPassword || r.Proxy.Config[0].Users[0].Password != RedactedPassword ||
		r.Proxy.Config[1].ReadWriteSplitting.Dynamic.Discovery.Password != RedactedPassword ||
		r.MySQL.Nodes[0].Password != RedactedPassword || r.MySQL.Nodes[1].Password != RedactedPassword {
		t.Errorf("not every password is redacted: %s", b)
	}
	// Deep copy: mutating the copy leaves the original alone.
	r.Proxy.Config[0].SimpleLoadBalance.Nodes[0] = "changed"
	*r.MySQL.Nodes[0].Weight = 42
	r.Proxy.Config[0].Plugin.CircuitBreak[0].Regex[0] = "changed"
	if cfg.Proxy.Config[0].SimpleLoadBalance.Nodes[0] != "ds001" || cfg.MySQL.Nodes[0].EffectiveWeight() != 1 ||
		cfg.Proxy.Config[0].Plugin.CircuitBreak[0].Regex[0] != "111" {
		t.Error("Redacted shares memory with the original")
	}
	// Everything else is preserved.
	r2 := cfg.Redacted()
	r2.Proxy.Config[0].Password = cfg.Proxy.Config[0].Password
	r2.Proxy.Config[0].Users[0].Password = "app-pw"
	r2.Proxy.Config[1].Password = cfg.Proxy.Config[1].Password
	r2.Proxy.Config[2].Password = cfg.Proxy.Config[2].Password
	r2.Proxy.Config[1].ReadWriteSplitting.Dynamic.Discovery.Password = "monitor-pw"
	r2.MySQL.Nodes[0].Password, r2.MySQL.Nodes[1].Password = "root", "root"
	if !reflect.DeepEqual(r2, cfg) {
		t.Error("Redacted changed more than passwords")
	}
	if (*Config)(nil).Redacted() != nil {
		t.Error("nil.Redacted() should be nil")
	}
}

// The redacted config, marshalled back to TOML and JSON, decodes strictly.
func TestMarshalRoundTrip(t *testing.T) {
	cfg, err := Load("testdata/pisanix.toml")
	if err != nil {
		t.Fatal(err)
	}
	tb, err := toml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(tb, TOML)
	if err != nil {
		t.Fatalf("re-parse TOML: %v\n%s", err, tb)
	}
	if !reflect.DeepEqual(back, cfg) {
		t.Errorf("TOML round trip differs:\n%s", tb)
	}
	jb, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	backJ, err := Parse(jb, JSON)
	if err != nil {
		t.Fatalf("re-parse JSON: %v", err)
	}
	if !reflect.DeepEqual(backJ, cfg) {
		t.Errorf("JSON round trip differs:\n%s", jb)
	}
}

func TestFormat(t *testing.T) {
	if FormatForPath("a/b.JSON") != JSON || FormatForPath("x.toml") != TOML || FormatForPath("config") != TOML {
		t.Error("FormatForPath")
	}
	if _, err := Parse([]byte("{}"), Format(7)); err == nil {
		t.Error("unknown format should fail")
	}
	if TOML.String() != "toml" || JSON.String() != "json" {
		t.Error("Format.String")
	}
}

func FuzzParseTOML(f *testing.F) {
	for _, p := range []string{examplePath, "testdata/pisanix.toml", "testdata/controller.toml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(minimalPisanix))
	f.Add([]byte("[[proxy.config]]\n[proxy.config.pool]\nidle_timeout = 5\n"))
	f.Add([]byte("a = {b = [1, {c = 2}]}\n[[proxy.config]]\npool = {idle_timeout = [1]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, TOML)
		if err == nil {
			_ = cfg.Redacted()
			for i := range cfg.Proxy.Config {
				_ = cfg.Proxy.Config[i].NodeNames(cfg)
			}
		} else if err.Error() == "" {
			t.Fatal("empty error message")
		}
	})
}

func TestWarnings(t *testing.T) {
	cfg := mustParse(t, `
[[proxy.config]]
name = "ro"
user = "u"
password = "p"
[proxy.config.read_write_splitting]
nodes = ["r1"]
[proxy.config.read_write_splitting.static]
default_target = "read"

[[proxy.config]]
name = "guide"
listen_addr = "127.0.0.1:3307"
user = "u"
password = "p"
[proxy.config.simple_loadbalance]
nodes = ["r1"]
[proxy.config.read_write_splitting.static]

[[mysql.node]]
name = "r1"
user = "u"
role = "read"
[[mysql.node]]
name = "w1"
user = "u"
role = "readwrite"
[[mysql.node]]
name = "other"
user = "u"
`, TOML)
	w := cfg.Warnings()
	if len(w) != 2 || !strings.HasPrefix(w[0], `proxy.config[0].read_write_splitting: no node with role "readwrite"`) ||
		!strings.HasPrefix(w[1], "proxy.config[1].simple_loadbalance.nodes: read/write splitting routes over every [[mysql.node]]") {
		t.Fatalf("warnings = %q", w)
	}
	// Listener 0 splits over its own list; listener 1 over every node.
	if got := cfg.Proxy.Config[0].PoolNodeNames(cfg); !reflect.DeepEqual(got, []string{"r1"}) {
		t.Errorf("PoolNodeNames = %v", got)
	}
	if got := cfg.Proxy.Config[1].RWNodeNames(cfg); !reflect.DeepEqual(got, []string{"r1", "w1", "other"}) {
		t.Errorf("RWNodeNames = %v", got)
	}
}

func FuzzParseJSON(f *testing.F) {
	b, err := os.ReadFile("testdata/controller.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"proxy":{"config":[{"pool":{"idle_timeout":[1,{"a":2}]}}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, JSON)
		if err == nil {
			_ = cfg.Redacted()
		}
	})
}
