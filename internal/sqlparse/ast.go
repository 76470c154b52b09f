package sqlparse

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/mysql"
)

// WithAST parses sql (a COM_QUERY or COM_STMT_PREPARE text) with a pooled
// TiDB parser in MariaDB mode and hands the statements to use, with the SQL
// mode the text parsed in (see WithASTMode).
func (p *Parser) WithAST(sql string, use func([]ast.StmtNode)) error {
	return p.WithASTMode(sql, func(stmts []ast.StmtNode, _ mysql.SQLMode) { use(stmts) })
}

// WithASTMode is WithAST that also tells in which SQL mode the text parsed:
// the server default first, then modes a session may have set that change
// how text is tokenized (IGNORE_SPACE, ANSI_QUOTES, NO_BACKSLASH_ESCAPES).
// A caller that restores the AST into SQL text needs it: with
// NO_BACKSLASH_ESCAPES string literals must be written without backslash
// escapes.
//
// The AST is only valid inside use: the parser goes back to the pool
// afterwards and reuses its nodes. Executable comments are read as the
// server runs them (/*M!NNNNNN ... */ and six-digit /*!NNNNNN ... */
// included). It never consults or fills the facts cache. A panic in the
// parser or in use becomes an error.
func (p *Parser) WithASTMode(sql string, use func([]ast.StmtNode, mysql.SQLMode)) (err error) {
	sql = versionComments(sql)
	tp := p.pool.Get().(*parser.Parser)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sqlparse: parser panic: %v", r)
			return // the parser's state is unknown: drop it
		}
		if len(sql) <= p.maxSQL {
			p.pool.Put(tp)
		}
	}()
	var stmts []ast.StmtNode
	var used mysql.SQLMode
	for i, mode := range sqlModes {
		if (mode == mysql.ModeANSIQuotes && !strings.Contains(sql, `"`)) ||
			(mode == mysql.ModeNoBackslashEscapes && !strings.Contains(sql, `\`)) {
			continue
		}
		tp.SetSQLMode(mode)
		var perr error
		stmts, _, perr = tp.ParseSQL(sql)
		if perr == nil {
			err, used = nil, mode
			break
		}
		if i == 0 {
			err = errors.New("sqlparse: syntax error, " + strings.TrimSpace(perr.Error()))
		}
	}
	tp.SetSQLMode(mysql.ModeNone)
	if err != nil {
		return err
	}
	if len(stmts) == 0 {
		return errors.New("sqlparse: empty query")
	}
	use(stmts, used)
	return nil
}
