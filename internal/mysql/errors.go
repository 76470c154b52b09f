package mysql

import (
	"fmt"
)

// Error is a MySQL error as carried by an ERR packet.
type Error struct {
	Code     uint16
	SQLState string
	Message  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("ERROR %d (%s): %s", e.Code, e.SQLState, e.Message)
}

// Error codes the proxy sends itself.
const (
	ErrCodeDBAccessDenied     = 1044 // 42000
	ErrCodeAccessDenied       = 1045 // 28000
	ErrCodeNoDB               = 1046 // 3D000
	ErrCodeUnknownCom         = 1047 // 08S01
	ErrCodeBadDB              = 1049 // 42000
	ErrCodeBadField           = 1054 // 42S22
	ErrCodeNoSuchTable        = 1146 // 42S02
	ErrCodeViewInvalid        = 1356 // HY000
	ErrCodeHandshake          = 1043 // 08S01
	ErrCodeTooManyConnections = 1040 // 08004
	ErrCodeNetPacketTooLarge  = 1153 // 08S01
	ErrCodeNetReadError       = 1158 // 08S01
	ErrCodePacketsOutOfOrder  = 1156 // 08S01
	ErrCodeNetReadInterrupted = 1159 // 08S01
	ErrCodeOutOfMemory        = 1037 // HY001
	ErrCodeAccessDeniedNoPass = 1698 // 28000
	ErrCodeUnknownStmtHandler = 1243 // HY000
	ErrCodeTableAccessDenied  = 1142 // 42000
	ErrCodeQueryInterrupted   = 1317 // 70100
	ErrCodeNoSuchThread       = 1094 // HY000
	ErrCodeKillDenied         = 1095 // HY000
	ErrCodeUnknown            = 1105 // HY000
	ErrCodeConnectionError    = 2002 // HY000
	ErrCodeServerGone         = 2006 // HY000
	ErrCodeServerLost         = 2013 // HY000
	ErrCodeLockWaitTimeout    = 1205 // HY000
)

// NewError builds an Error.
func NewError(code uint16, state, format string, args ...any) *Error {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return &Error{Code: code, SQLState: state, Message: msg}
}

// ErrNoHealthyBackend is Pisanix's error when no backend can serve.
func ErrNoHealthyBackend() *Error {
	return NewError(ErrCodeConnectionError, "HY000", "There is no healthy backend to connect.")
}

// AppendErr appends an ERR packet payload (protocol 4.1 format).
func AppendErr(b []byte, e *Error) []byte {
	b = append(b, ERRHeader)
	b = appendUint16(b, e.Code)
	state := e.SQLState
	if len(state) != 5 {
		state = "HY000"
	}
	b = append(b, '#')
	b = append(b, state...)
	return append(b, e.Message...)
}

// ParseErr decodes an ERR packet payload (first byte 0xff).
func ParseErr(p []byte) *Error {
	if len(p) < 3 || p[0] != ERRHeader {
		return &Error{Code: ErrCodeUnknown, SQLState: "HY000", Message: "malformed error packet"}
	}
	e := &Error{Code: uint16(p[1]) | uint16(p[2])<<8, SQLState: "HY000"}
	rest := p[3:]
	if len(rest) >= 6 && rest[0] == '#' {
		e.SQLState = string(rest[1:6])
		rest = rest[6:]
	}
	e.Message = string(rest)
	return e
}
