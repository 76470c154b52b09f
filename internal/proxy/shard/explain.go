package shard

import (
	"errors"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// Explanation is how a statement would run, for the admin endpoint
// GET /sharding/route?sql=...&db=... It marshals to JSON.
type Explanation struct {
	SQL string `json:"sql"`
	DB  string `json:"db"`
	// Route is "unsharded", "single", "multi", "all" or "refused".
	Route   string            `json:"route"`
	Tables  []string          `json:"tables,omitempty"`
	Targets []ExplainTarget   `json:"targets,omitempty"`
	Merge   *Merge            `json:"merge,omitempty"`
	Rename  map[string]string `json:"rename,omitempty"`
	// Error is the refusal the client would get.
	Error *ExplainError `json:"error,omitempty"`
}

// ExplainTarget is one physical statement.
type ExplainTarget struct {
	Node   string `json:"node"`
	Shard  int    `json:"shard"`
	Schema string `json:"schema"`
	Table  string `json:"table"`
	SQL    string `json:"sql"`
	Params []int  `json:"params,omitempty"`
}

// ExplainError is a MySQL error; Reason is a refusal's (the label of
// pisa_proxy_sharding_refusals_total), empty for other errors.
type ExplainError struct {
	Code     uint16 `json:"code"`
	SQLState string `json:"sqlstate"`
	Message  string `json:"message"`
	Reason   string `json:"reason,omitempty"`
}

// Explain plans sql in session database db and describes the result. A
// statement with `?` markers is explained as Plan would run it (parameters
// unknown: every shard the key could reach).
func (rt *Router) Explain(sql, db string) *Explanation {
	e := &Explanation{SQL: sql, DB: db}
	p, err := rt.Plan(sql, db)
	if err != nil {
		e.Route = "refused"
		var me *mysql.Error
		if errors.As(err, &me) {
			e.Error = &ExplainError{Code: me.Code, SQLState: me.SQLState, Message: me.Message}
		} else {
			e.Error = &ExplainError{Code: ErrCodeNotSupported, SQLState: "42000", Message: err.Error()}
		}
		if e.Error.Code == ErrCodeNotSupported {
			e.Error.Reason = ReasonOf(err).String()
		}
		return e
	}
	e.Route = p.Kind.String()
	e.Tables, e.Merge, e.Rename = p.Tables, p.Merge, p.Rename
	for _, t := range p.Targets {
		e.Targets = append(e.Targets, ExplainTarget(t))
	}
	return e
}
