// Package mysql implements the MySQL client/server wire protocol as the proxy
// needs it: packet framing (with >16 MiB payloads and the compression
// protocol), the server and client handshakes, authentication plugins, and
// helpers to inspect OK/ERR/EOF packets without buffering result sets.
package mysql

// Command bytes (first byte of a command packet).
const (
	ComSleep            byte = 0x00
	ComQuit             byte = 0x01
	ComInitDB           byte = 0x02
	ComQuery            byte = 0x03
	ComFieldList        byte = 0x04
	ComCreateDB         byte = 0x05
	ComDropDB           byte = 0x06
	ComRefresh          byte = 0x07
	ComShutdown         byte = 0x08
	ComStatistics       byte = 0x09
	ComProcessInfo      byte = 0x0a
	ComConnect          byte = 0x0b
	ComProcessKill      byte = 0x0c
	ComDebug            byte = 0x0d
	ComPing             byte = 0x0e
	ComTime             byte = 0x0f
	ComDelayedInsert    byte = 0x10
	ComChangeUser       byte = 0x11
	ComBinlogDump       byte = 0x12
	ComTableDump        byte = 0x13
	ComConnectOut       byte = 0x14
	ComRegisterSlave    byte = 0x15
	ComStmtPrepare      byte = 0x16
	ComStmtExecute      byte = 0x17
	ComStmtSendLongData byte = 0x18
	ComStmtClose        byte = 0x19
	ComStmtReset        byte = 0x1a
	ComSetOption        byte = 0x1b
	ComStmtFetch        byte = 0x1c
	ComDaemon           byte = 0x1d
	ComBinlogDumpGTID   byte = 0x1e
	ComResetConnection  byte = 0x1f
	ComStmtBulkExecute  byte = 0xfa // MariaDB
)

var commandNames = map[byte]string{
	ComSleep: "COM_SLEEP", ComQuit: "COM_QUIT", ComInitDB: "COM_INIT_DB", ComQuery: "COM_QUERY",
	ComFieldList: "COM_FIELD_LIST", ComCreateDB: "COM_CREATE_DB", ComDropDB: "COM_DROP_DB",
	ComRefresh: "COM_REFRESH", ComShutdown: "COM_SHUTDOWN", ComStatistics: "COM_STATISTICS",
	ComProcessInfo: "COM_PROCESS_INFO", ComConnect: "COM_CONNECT", ComProcessKill: "COM_PROCESS_KILL",
	ComDebug: "COM_DEBUG", ComPing: "COM_PING", ComTime: "COM_TIME", ComDelayedInsert: "COM_DELAYED_INSERT",
	ComChangeUser: "COM_CHANGE_USER", ComBinlogDump: "COM_BINLOG_DUMP", ComTableDump: "COM_TABLE_DUMP",
	ComConnectOut: "COM_CONNECT_OUT", ComRegisterSlave: "COM_REGISTER_SLAVE", ComStmtPrepare: "COM_STMT_PREPARE",
	ComStmtExecute: "COM_STMT_EXECUTE", ComStmtSendLongData: "COM_STMT_SEND_LONG_DATA",
	ComStmtClose: "COM_STMT_CLOSE", ComStmtReset: "COM_STMT_RESET", ComSetOption: "COM_SET_OPTION",
	ComStmtFetch: "COM_STMT_FETCH", ComDaemon: "COM_DAEMON", ComBinlogDumpGTID: "COM_BINLOG_DUMP_GTID",
	ComResetConnection: "COM_RESET_CONNECTION", ComStmtBulkExecute: "COM_STMT_BULK_EXECUTE",
}

// CommandName returns the protocol name of a command byte ("COM_QUERY").
func CommandName(c byte) string {
	if n, ok := commandNames[c]; ok {
		return n
	}
	return "COM_UNKNOWN"
}

// Capability flags.
const (
	ClientLongPassword               uint32 = 1 << 0 // CLIENT_MYSQL in MariaDB
	ClientFoundRows                  uint32 = 1 << 1
	ClientLongFlag                   uint32 = 1 << 2
	ClientConnectWithDB              uint32 = 1 << 3
	ClientNoSchema                   uint32 = 1 << 4
	ClientCompress                   uint32 = 1 << 5
	ClientODBC                       uint32 = 1 << 6
	ClientLocalFiles                 uint32 = 1 << 7
	ClientIgnoreSpace                uint32 = 1 << 8
	ClientProtocol41                 uint32 = 1 << 9
	ClientInteractive                uint32 = 1 << 10
	ClientSSL                        uint32 = 1 << 11
	ClientIgnoreSIGPIPE              uint32 = 1 << 12
	ClientTransactions               uint32 = 1 << 13
	ClientReserved                   uint32 = 1 << 14
	ClientSecureConnection           uint32 = 1 << 15
	ClientMultiStatements            uint32 = 1 << 16
	ClientMultiResults               uint32 = 1 << 17
	ClientPSMultiResults             uint32 = 1 << 18
	ClientPluginAuth                 uint32 = 1 << 19
	ClientConnectAttrs               uint32 = 1 << 20
	ClientPluginAuthLenencClientData uint32 = 1 << 21
	ClientCanHandleExpiredPasswords  uint32 = 1 << 22
	ClientSessionTrack               uint32 = 1 << 23
	ClientDeprecateEOF               uint32 = 1 << 24
	ClientOptionalResultsetMetadata  uint32 = 1 << 25
	ClientSSLVerifyServerCert        uint32 = 1 << 30
	ClientRememberOptions            uint32 = 1 << 31
)

// MariaDB extended capabilities (sent in the handshake's reserved bytes when
// the server clears CLIENT_MYSQL).
const (
	MariaDBClientProgress         uint32 = 1 << 0
	MariaDBClientComMulti         uint32 = 1 << 1
	MariaDBClientStmtBulkOps      uint32 = 1 << 2
	MariaDBClientExtendedMetadata uint32 = 1 << 3
	MariaDBClientCacheMetadata    uint32 = 1 << 4
)

// Server status flags.
const (
	StatusInTrans            uint16 = 0x0001
	StatusAutocommit         uint16 = 0x0002
	StatusMoreResultsExists  uint16 = 0x0008
	StatusNoGoodIndexUsed    uint16 = 0x0010
	StatusNoIndexUsed        uint16 = 0x0020
	StatusCursorExists       uint16 = 0x0040
	StatusLastRowSent        uint16 = 0x0080
	StatusDBDropped          uint16 = 0x0100
	StatusNoBackslashEscapes uint16 = 0x0200
	StatusMetadataChanged    uint16 = 0x0400
	StatusQueryWasSlow       uint16 = 0x0800
	StatusPSOutParams        uint16 = 0x1000
	StatusInTransReadonly    uint16 = 0x2000
	StatusSessionStateChange uint16 = 0x4000
)

// Session state tracker types (CLIENT_SESSION_TRACK).
const (
	SessionTrackSystemVariables  byte = 0
	SessionTrackSchema           byte = 1
	SessionTrackStateChange      byte = 2
	SessionTrackGTIDs            byte = 3
	SessionTrackTransactionChars byte = 4
	SessionTrackTransactionState byte = 5
)

// Packet header bytes.
const (
	OKHeader          byte = 0x00
	EOFHeader         byte = 0xfe
	ERRHeader         byte = 0xff
	LocalInfileHeader byte = 0xfb
	AuthMoreData      byte = 0x01
	AuthSwitchRequest byte = 0xfe
)

// MaxPayload is the largest payload of one physical packet; larger logical
// packets are split into several.
const MaxPayload = 1<<24 - 1

// Authentication plugin names.
const (
	AuthNativePassword    = "mysql_native_password"
	AuthCachingSha2       = "caching_sha2_password"
	AuthSha256Password    = "sha256_password"
	AuthClearPassword     = "mysql_clear_password"
	DefaultServerVersion  = "5.7.37"
	DefaultCollationID    = 45 // utf8mb4_general_ci
	CollationBinary       = 63
	cachingSha2FastOK     = 0x03
	cachingSha2FullAuth   = 0x04
	cachingSha2RequestKey = 0x02
)
