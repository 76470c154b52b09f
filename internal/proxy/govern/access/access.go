// Package access implements per-user access control on a listener: each
// user has its own password, allowed schemas, allowed tables, allowed
// statement kinds and an optional row limit on reads.
//
// Denials use MySQL's own errors: 1044 (42000) for a schema, 1142 (42000)
// for a table, 1227 (42000) for a statement kind when the statement names
// no table. Rules are an allow-list and fail closed: names are compared
// exactly (case-sensitively, as MySQL does with lower_case_table_names=0),
// and a restricted user's statement that could not be parsed, or that
// holds several statements, is refused.
//
// Users not listed (the listener's own Pisanix user) are not restricted.
package access

import (
	"net"
	"strings"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/govmetrics"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// ErrCodeSpecificAccessDenied is MySQL's ER_SPECIFIC_ACCESS_DENIED_ERROR
// (42000).
const ErrCodeSpecificAccessDenied = 1227

// Kind bits.
const (
	kindRead uint8 = 1 << iota
	kindWrite
	kindDDL
	kindAdmin
)

var kindNames = map[string]uint8{
	proxyconfig.AccessKindRead: kindRead, proxyconfig.AccessKindWrite: kindWrite,
	proxyconfig.AccessKindDDL: kindDDL, proxyconfig.AccessKindAdmin: kindAdmin,
}

// Options are the compile-time dependencies of a Policy.
type Options struct {
	Domain  string
	Metrics *govmetrics.Metrics
}

// Policy is a compiled access config, immutable and safe for concurrent
// use. A nil *Policy allows everything.
type Policy struct {
	users map[string]*user
}

type user struct {
	name, password string
	rule           string // "access:<user>", the metrics rule label
	restricted     bool

	allSchemas bool
	schemas    map[string]struct{}

	allTables  bool                       // tables empty or "*"
	wildSchema map[string]struct{}        // "db.*"
	tables     map[string]map[string]bool // db -> table

	kinds   uint8 // 0 = all
	maxRows uint64

	domain  string
	metrics *govmetrics.Metrics
}

func (u *user) count(reason string) { u.metrics.Rejection(u.domain, u.rule, reason).Inc() }

// Compile validates (proxyconfig.Access.Validate) and compiles cfg (nil:
// no users, allow everything). The session enforces MaxRows (see
// Policy.Check).
func Compile(cfg *proxyconfig.Access, o Options) (*Policy, error) {
	p := &Policy{users: map[string]*user{}}
	if cfg == nil {
		return p, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, u := range cfg.Users {
		c := &user{
			name: u.User, password: u.Password, rule: "access:" + u.User,
			allSchemas: len(u.Schemas) == 0, schemas: map[string]struct{}{},
			allTables: len(u.Tables) == 0, wildSchema: map[string]struct{}{}, tables: map[string]map[string]bool{},
			maxRows: u.MaxRows,
		}
		for _, s := range u.Schemas {
			id, _ := proxyconfig.ParseSchemaName(s)
			c.schemas[id] = struct{}{}
		}
		for _, t := range u.Tables {
			db, table, _ := proxyconfig.ParseTablePattern(t)
			c.addTable(db, table)
		}
		for _, k := range u.Kinds {
			name, _ := proxyconfig.AccessKind(k)
			c.kinds |= kindNames[name]
		}
		c.restricted = !c.allSchemas || !c.allTables || c.kinds != 0
		c.domain, c.metrics = o.Domain, o.Metrics
		p.users[u.User] = c
	}
	return p, nil
}

// addTable records a parsed table pattern (see proxyconfig.ParseTablePattern).
func (c *user) addTable(db, table string) {
	switch {
	case db == "":
		c.allTables = true
	case table == "":
		c.wildSchema[db] = struct{}{}
	default:
		if c.tables[db] == nil {
			c.tables[db] = map[string]bool{}
		}
		c.tables[db][table] = true
	}
}

// Lookup returns the password of a listed user.
func (p *Policy) Lookup(name string) (password string, ok bool) {
	if p == nil {
		return "", false
	}
	u := p.users[name]
	if u == nil {
		return "", false
	}
	return u.password, true
}

// Users returns the listed user names (unordered).
func (p *Policy) Users() []string {
	if p == nil {
		return nil
	}
	out := make([]string, 0, len(p.users))
	for n := range p.users {
		out = append(out, n)
	}
	return out
}

// AllowsAdmin reports whether user may run administrative commands (the
// "admin" kind): users not listed, and listed users whose kinds are empty
// or name "admin".
func (p *Policy) AllowsAdmin(name string) bool {
	if p == nil {
		return true
	}
	u := p.users[name]
	return u == nil || !u.restricted || u.kinds == 0 || u.kinds&kindAdmin != 0
}

// Denied describes a refused statement.
type Denied struct {
	Rule   string // "access:<user>"
	Reason string // govmetrics.ReasonSchema, ReasonTable, ReasonKind, ReasonUnparsed
	Err    *mysql.Error
}

// CheckSchema checks that user may use schema (handshake database,
// COM_INIT_DB, USE, COM_CHANGE_USER). An empty schema is allowed.
func (p *Policy) CheckSchema(userName, clientAddr, schema string) *Denied {
	if p == nil || schema == "" {
		return nil
	}
	u := p.users[userName]
	if u == nil || u.allSchemas {
		return nil
	}
	if _, ok := u.schemas[schema]; ok {
		return nil
	}
	u.count(govmetrics.ReasonSchema)
	return &Denied{Rule: u.rule, Reason: govmetrics.ReasonSchema, Err: mysql.NewError(mysql.ErrCodeDBAccessDenied, "42000",
		"Access denied for user '%s'@'%s' to database '%s'", u.name, host(clientAddr), schema)}
}

// Check checks one command of user. schema is the session's current
// schema (for unqualified tables). For COM_INIT_DB sql is the schema name,
// for COM_FIELD_LIST the table name; for statements f are their facts
// (nil when unknown). It returns the row limit that applies to the
// statement (0 = none: the user has no max_rows or the statement is not a
// SELECT) or why it is refused. The pass path does not allocate.
func (p *Policy) Check(userName, schema, clientAddr string, cmd byte, sql string, f *sqlparse.Facts) (maxRows uint64, d *Denied) {
	if p == nil || len(p.users) == 0 {
		return 0, nil
	}
	u := p.users[userName]
	if u == nil {
		return 0, nil
	}
	if !u.restricted {
		return u.rowLimit(f), nil
	}
	switch cmd {
	case mysql.ComInitDB:
		return 0, p.CheckSchema(userName, clientAddr, sql)
	case mysql.ComFieldList:
		table := sql
		if i := strings.IndexByte(table, 0); i >= 0 {
			table = table[:i]
		}
		if !u.tableOK(schema, table) {
			return 0, u.denyTable("SELECT", clientAddr, schema, table)
		}
		return 0, nil
	}
	if f == nil {
		if sql == "" {
			return 0, nil // no statement (COM_PING, COM_STMT_CLOSE...)
		}
		return 0, u.denyUnparsed(clientAddr, "the statement could not be analysed")
	}
	if f.ParseErr != nil {
		return 0, u.denyUnparsed(clientAddr, "the statement could not be parsed")
	}
	if f.Multi {
		return 0, u.denyUnparsed(clientAddr, "multi-statement queries are not allowed for restricted users")
	}
	if f.Kind == sqlparse.KindUse {
		db, ok := useTarget(sql)
		if !ok {
			return 0, u.denyUnparsed(clientAddr, "the USE statement could not be parsed")
		}
		return 0, p.CheckSchema(userName, clientAddr, db)
	}
	if k := classKind(f.Class); k != 0 && u.kinds != 0 && u.kinds&k == 0 {
		return 0, u.denyKind(clientAddr, schema, sql, f, k)
	}
	for i := range f.Tables {
		t := &f.Tables[i]
		db := t.Schema
		if db == "" {
			db = schema
		}
		if !u.tableOK(db, t.Name) {
			return 0, u.denyTable(commandName(sql, f), clientAddr, db, t.Name)
		}
	}
	return u.rowLimit(f), nil
}

func (u *user) rowLimit(f *sqlparse.Facts) uint64 {
	if u.maxRows == 0 || f == nil || f.Kind != sqlparse.KindSelect {
		return 0
	}
	return u.maxRows
}

func (u *user) tableOK(db, table string) bool {
	if !u.allSchemas {
		if _, ok := u.schemas[db]; !ok {
			return false
		}
	}
	if u.allTables {
		return true
	}
	if _, ok := u.wildSchema[db]; ok {
		return true
	}
	return u.tables[db][table]
}

func classKind(c sqlparse.Class) uint8 {
	switch c {
	case sqlparse.ClassRead:
		return kindRead
	case sqlparse.ClassWrite:
		return kindWrite
	case sqlparse.ClassDDL:
		return kindDDL
	case sqlparse.ClassAdmin:
		return kindAdmin
	}
	return 0 // transaction / session control
}

var privileges = map[uint8]string{
	kindRead: "SELECT", kindWrite: "INSERT, UPDATE, DELETE", kindDDL: "CREATE, ALTER, DROP", kindAdmin: "SUPER",
}

func (u *user) denyTable(command, clientAddr, db, table string) *Denied {
	u.count(govmetrics.ReasonTable)
	return &Denied{Rule: u.rule, Reason: govmetrics.ReasonTable, Err: mysql.NewError(mysql.ErrCodeTableAccessDenied, "42000",
		"%s command denied to user '%s'@'%s' for table `%s`.`%s`", command, u.name, host(clientAddr), db, table)}
}

func (u *user) denyKind(clientAddr, schema, sql string, f *sqlparse.Facts, k uint8) *Denied {
	u.count(govmetrics.ReasonKind)
	if len(f.Tables) > 0 {
		t := f.Tables[0]
		if t.Schema == "" {
			t.Schema = schema
		}
		return &Denied{Rule: u.rule, Reason: govmetrics.ReasonKind, Err: mysql.NewError(mysql.ErrCodeTableAccessDenied, "42000",
			"%s command denied to user '%s'@'%s' for table `%s`.`%s`", commandName(sql, f), u.name, host(clientAddr), t.Schema, t.Name)}
	}
	return &Denied{Rule: u.rule, Reason: govmetrics.ReasonKind, Err: mysql.NewError(ErrCodeSpecificAccessDenied, "42000",
		"Access denied; you need (at least one of) the %s privilege(s) for this operation", privileges[k])}
}

func (u *user) denyUnparsed(clientAddr, why string) *Denied {
	u.count(govmetrics.ReasonUnparsed)
	return &Denied{Rule: u.rule, Reason: govmetrics.ReasonUnparsed, Err: mysql.NewError(ErrCodeSpecificAccessDenied, "42000",
		"Access denied for user '%s'@'%s': %s", u.name, host(clientAddr), why)}
}

func host(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// commandName is the word MySQL puts in "... command denied": the
// statement's first keyword, upper-cased (SELECT, INSERT, DROP...).
func commandName(sql string, f *sqlparse.Facts) string {
	switch f.Kind {
	case sqlparse.KindSelect, sqlparse.KindExplain:
		return "SELECT"
	case sqlparse.KindInsert, sqlparse.KindLoadData:
		return "INSERT"
	case sqlparse.KindUpdate:
		return "UPDATE"
	case sqlparse.KindDelete:
		return "DELETE"
	case sqlparse.KindReplace:
		return "REPLACE"
	}
	w := firstWord(sql)
	if w == "" {
		return "SELECT"
	}
	return strings.ToUpper(w)
}

// firstWord returns the first keyword of sql, skipping blanks, comments
// and opening parentheses.
func firstWord(sql string) string {
	s := skipSpace(sql)
	for len(s) > 0 && s[0] == '(' {
		s = skipSpace(s[1:])
	}
	i := 0
	for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || s[i] == '_') {
		i++
	}
	return s[:i]
}

// skipSpace skips whitespace and comments (/* */, -- , #).
func skipSpace(s string) string {
	for len(s) > 0 {
		switch {
		case s[0] == ' ' || s[0] == '\t' || s[0] == '\n' || s[0] == '\r' || s[0] == '\f':
			s = s[1:]
		case strings.HasPrefix(s, "/*") && !strings.HasPrefix(s, "/*!"):
			i := strings.Index(s[2:], "*/")
			if i < 0 {
				return ""
			}
			s = s[i+4:]
		case strings.HasPrefix(s, "-- ") || strings.HasPrefix(s, "--\t") || s == "--" || s[0] == '#':
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return ""
			}
			s = s[i+1:]
		default:
			return s
		}
	}
	return s
}

// useTarget extracts the schema of "USE db" (plain or backquoted).
func useTarget(sql string) (string, bool) {
	s := skipSpace(sql)
	if len(s) < 3 || !strings.EqualFold(s[:3], "use") {
		return "", false
	}
	s = skipSpace(s[3:])
	s = strings.TrimRight(s, " \t\r\n;")
	id, rest, ok := proxyconfig.ParseIdent(s)
	if !ok || id == "" || skipSpace(rest) != "" {
		return "", false
	}
	return id, true
}
