package proxy

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// Fuzzing the session: a real proxy in front of the shared MariaDB (built
// once per fuzz process), one fresh authenticated session per input, one
// command built from the input, then COM_PING. The proxy must not panic;
// the session answers the ping or has closed cleanly; a fresh session
// works afterwards.
//
// Inputs never run arbitrary SQL on the shared server: COM_QUERY and
// COM_STMT_PREPARE texts are "SELECT " followed by tokens from a fixed
// table (no INTO, SLEEP, locks beyond one named lock, ...) and hex
// literals of the raw bytes; other commands carry the raw bytes (schema
// names, statement ids, parameters of a harmless prepared SELECT, ...).

// fuzzCommands are the command bytes an input's first byte selects from.
var fuzzCommands = []byte{
	mysql.ComQuery, mysql.ComInitDB, mysql.ComFieldList, mysql.ComStatistics, mysql.ComPing,
	mysql.ComQuit, mysql.ComChangeUser, mysql.ComStmtPrepare, mysql.ComStmtExecute,
	mysql.ComStmtSendLongData, mysql.ComStmtClose, mysql.ComStmtReset, mysql.ComStmtFetch,
	mysql.ComSetOption, mysql.ComResetConnection, mysql.ComStmtBulkExecute, mysql.ComProcessKill,
	mysql.ComBinlogDump, mysql.ComSleep, 0x99,
}

// sqlTokens are the pieces fuzz bytes turn into after "SELECT ".
var sqlTokens = []string{
	"1", "'a'", "NULL", ",", "(", ")", "+", "-", "*", "/", "=", "<", "AND", "OR", "NOT",
	"CONNECTION_ID()", "@v", "@@version", "@v := 1", "@@session.sql_mode", "DATABASE()",
	"REPEAT('x', 70000)", "REPEAT('y', 300)", "seq FROM seq_1_to_50", "FROM DUAL", "WHERE", "LIMIT 3",
	"UNION SELECT", "SELECT", "CAST(", "AS CHAR)", "JSON_OBJECT('k', 1)", "POINT(1, 2)",
	"GET_LOCK('pisa_fuzz', 0)", "RELEASE_LOCK('pisa_fuzz')", "KILL", "1e308", "0x41", "'\\''",
	"CONCAT(", "_utf8mb4'é'", "`seq`", "\"dq\"", "-- c\n", "/* c */", "#c\n", "/*!", "*/", ";",
	"FROM seq_1_to_3 a, seq_1_to_3 b", "COUNT(*)", "GROUP BY 1", "ORDER BY 1 DESC", "ROW(1,2)",
	"(SELECT 1)", "EXISTS", "CASE WHEN 1 THEN 2 END", "X'00ff'", "CURRENT_USER()", "LAST_INSERT_ID()",
}

// sqlFromFuzz builds "SELECT ..." from fuzz bytes: a byte below 0xf0 picks
// a token; 0xf0+k takes the next k+1 bytes as a hex literal.
func sqlFromFuzz(b []byte) []byte {
	var sb strings.Builder
	sb.WriteString("SELECT ")
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c >= 0xf0 {
			k := min(int(c-0xf0)+1, len(b)-i-1)
			sb.WriteString(" X'" + hex.EncodeToString(b[i+1:i+1+k]) + "' ")
			i += k
			continue
		}
		sb.WriteString(sqlTokens[int(c)%len(sqlTokens)])
		sb.WriteByte(' ')
	}
	return []byte(sb.String())
}

// fuzzPacket builds the command packet for an input.
func fuzzPacket(data []byte, stmtID uint32) []byte {
	if len(data) == 0 {
		return []byte{mysql.ComPing}
	}
	cmd := fuzzCommands[int(data[0])%len(fuzzCommands)]
	arg := data[1:]
	switch cmd {
	case mysql.ComQuery, mysql.ComStmtPrepare:
		return append([]byte{cmd}, sqlFromFuzz(arg)...)
	case mysql.ComStmtExecute, mysql.ComStmtSendLongData, mysql.ComStmtClose, mysql.ComStmtReset,
		mysql.ComStmtFetch, mysql.ComStmtBulkExecute:
		// The statement prepared by the harness, unless the input names
		// another id (first arg byte odd: the next four bytes are the id).
		id := stmtID
		if len(arg) >= 5 && arg[0]&1 == 1 {
			id = binary.LittleEndian.Uint32(arg[1:])
			arg = arg[5:]
		} else if len(arg) > 0 {
			arg = arg[1:]
		}
		p := binary.LittleEndian.AppendUint32([]byte{cmd}, id)
		return append(p, arg...)
	}
	return append([]byte{cmd}, arg...)
}

func FuzzSessionCommands(f *testing.F) {
	tp := mariaProxy(f)
	seeds := [][]byte{
		{0, 0, 3, 1},              // SELECT 1 , 'a'
		{0, 15, 3, 16, 3, 18},     // CONNECTION_ID(), @v, @v := 1
		{0, 23, 0xf3, 1, 2, 3, 4}, // seq + hex
		{0, 35, 0x30},             // KILL inside a SELECT
		{1, 't', 'e', 's', 't'},   // COM_INIT_DB test
		{1, 'n', 'o', 'p', 'e'},   // COM_INIT_DB unknown
		{2, 's', 'e', 'q', '_', '1', '_', 't', 'o', '_', '3', 0},
		{3}, {4}, {5},
		{6, 'n', 'o', 'p', 'a', 's', 's', 0, 0, 't', 'e', 's', 't', 0, 45, 0},
		{6, 'p', 'r', 'o', 'x', 'y', 0, 20, 1, 2, 3},
		{7, 0, 3, 1},
		{8, 0, 0, 1, 0, 0, 0, 0, 1, 8, 0, 0xfd, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 'x'},
		{8, 0, 1, 1, 0, 0, 0, 0},
		{8, 1, 9, 0, 0, 0, 0, 1, 0, 0, 0},
		{9, 0, 0, 0, 'l', 'o', 'n', 'g'},
		{10, 0}, {11, 0}, {12, 0, 5, 0, 0, 0},
		{13, 0, 0}, {13, 1, 0}, {13, 9},
		{14},
		{15, 0, 0x80, 0, 8, 0, 0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'a'},
		{16, 1, 0, 0, 0}, {16, 0xff, 0xff, 0xff, 0x7f},
		{17, 0, 0, 0, 0}, {18}, {19, 1, 2},
		{7, 0xff, 0xff},
	}
	for _, s := range seeds {
		f.Add(s, uint8(1))
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, setup uint8) {
		caps := uint32(0)
		if setup&2 != 0 {
			caps |= mysql.ClientDeprecateEOF
		}
		if setup&4 != 0 {
			caps |= mysql.ClientSessionTrack
		}
		if setup&8 != 0 {
			caps |= mysql.ClientCompress
		}
		var ext uint32
		if setup&16 != 0 {
			ext = mysql.MariaDBClientStmtBulkOps | mysql.MariaDBClientExtendedMetadata
		}
		pc := pdialProxy(t, tp.addr, caps, ext)
		_ = pc.nc.SetDeadline(time.Now().Add(10 * time.Second))
		stmtID := uint32(1)
		if setup&1 != 0 {
			q := "SELECT ?, CONCAT(?, 'x') FROM seq_1_to_20"
			if setup&32 != 0 {
				q = "INSERT INTO pisa_fuzz_never_exists VALUES (?, ?)"
			}
			pc.send(t, append([]byte{mysql.ComStmtPrepare}, q...))
			if st, e := pc.readPrepare(t); e == nil {
				stmtID = st.id
			}
		}
		p := fuzzPacket(data, stmtID)
		pc.c.ResetSeq()
		if err := pc.c.WritePacketFlush(p); err != nil {
			t.Fatalf("write command: %v", err)
		}
		// Read the response by the grammar of the command (which also
		// checks the proxy's framing), then ping.
		if closed := readResponse(t, pc, p); !closed {
			pc.c.ResetSeq()
			if err := pc.c.WritePacketFlush([]byte{mysql.ComPing}); err != nil {
				if !closedErr(err) {
					t.Fatalf("write ping: %v", err)
				}
			} else {
				resp, err := pc.c.ReadPacket()
				switch {
				case err == nil && resp[0] == mysql.OKHeader:
				case err != nil && closedErr(err):
				default:
					t.Fatalf("command %q: ping got %q, %v", p[:min(len(p), 40)], resp, err)
				}
			}
		}
		// The proxy still serves a fresh session.
		fresh := pdialProxy(t, tp.addr, 0, 0)
		_ = fresh.nc.SetDeadline(time.Now().Add(10 * time.Second))
		fresh.ping(t)
		pc.nc.Close()
		fresh.nc.Close()
	})
}

// readResponse reads the response to p by its command's grammar. It
// reports whether the proxy closed the session (cleanly: EOF or reset).
func readResponse(t *testing.T, pc *pconn, p []byte) (closed bool) {
	ft := &fatalTB{TB: t}
	defer func() {
		if r := recover(); r != nil {
			msg := fmt.Sprint(r)
			for _, s := range []string{"EOF", "reset by peer", "broken pipe", "use of closed"} {
				if strings.Contains(msg, s) {
					closed = true
					return
				}
			}
			t.Fatalf("command %q: %s", p[:min(len(p), 40)], msg)
		}
	}()
	one := func() []byte {
		p := pc.read(ft)
		if p[0] == mysql.LocalInfileHeader {
			ft.Fatalf("LOCAL INFILE request")
		}
		return p
	}
	switch p[0] {
	case mysql.ComQuery:
		pc.readResults(ft, one(), false)
	case mysql.ComStmtExecute, mysql.ComStmtBulkExecute:
		pc.readResults(ft, one(), true)
	case mysql.ComStmtPrepare:
		_, _ = pc.readPrepare(ft)
	case mysql.ComFieldList, mysql.ComStmtFetch:
		for {
			q := one()
			if q[0] == mysql.ERRHeader || pc.isEnd(q) {
				break
			}
		}
	case mysql.ComStmtSendLongData, mysql.ComStmtClose:
		// No response.
	case mysql.ComQuit:
		pc.read(ft)
		ft.Fatalf("answer to COM_QUIT")
	case mysql.ComChangeUser:
		q := one()
		if q[0] == mysql.AuthSwitchRequest {
			if err := pc.c.WritePacketFlush([]byte("wrong")); err != nil {
				ft.Fatalf("auth switch response: %v", err)
			}
			q = one()
		}
		if q[0] == mysql.ERRHeader && mysql.ParseErr(q).Code == mysql.ErrCodeAccessDenied {
			pc.read(ft) // the session must close
			ft.Fatalf("session open after a failed COM_CHANGE_USER")
		}
	default:
		one()
	}
	return false
}

func closedErr(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "reset by peer") || strings.Contains(err.Error(), "broken pipe")
}

// The SQL text checks of the data path: no panic, and KILL handling never
// yields a statement the proxy would forward with KILL at its start.
func FuzzSQLText(f *testing.F) {
	for _, s := range []string{"KILL 5", "kill query 7;", "KILL HARD CONNECTION 1", "/*!KILL 5+0*/", "/*M!100000 KILL 1 */",
		"SELECT CONNECTION_ID(), connection_id()", "SET @a := 1", "SELECT '@' , @@x", "LOCK TABLES t READ",
		"SELECT GET_LOCK('a', 1)", "SELECT 1 FOR UPDATE", "  ( select 1 )", "/* unterminated", "-- x\nKILL 3", "#\nKILL 99999999999",
		"SELECT 'a\\'@'", "/*!", "/*M!", "KILL USER root"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		i := skipSpaceAndComments(q)
		if i < 0 || i > len(q) {
			t.Fatalf("skip returned %d for %d bytes", i, len(q))
		}
		checkScanText(t, q) // and hasLock, hasUserVarAssign, isReadOnly
		for _, c := range connectionIDCalls(q, false) {
			if c < 0 || c+len(connIDCall) > len(q) || indexFold(q[c:c+len(connIDCall)], connIDCall) != 0 {
				t.Fatalf("call at %d is not CONNECTION_ID(): %q", c, q)
			}
		}
		_ = trimTrailingComments(q)
		// KILL is parsed per statement; a statement with anything after
		// the target is never taken as a KILL the proxy runs.
		for _, st := range splitStatements(q) {
			if isKill(st) {
				parseKillStmt(st, 1)
			}
		}
	})
}
