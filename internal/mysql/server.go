package mysql

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
)

// DefaultServerCapabilities are the capabilities the proxy announces to
// clients (CLIENT_SSL is added when TLS is configured, CLIENT_COMPRESS when
// compression is allowed).
const DefaultServerCapabilities = ClientLongPassword | ClientFoundRows | ClientLongFlag |
	ClientConnectWithDB | ClientProtocol41 | ClientTransactions | ClientSecureConnection |
	ClientMultiStatements | ClientMultiResults | ClientPSMultiResults | ClientLocalFiles |
	ClientConnectAttrs | ClientPluginAuth | ClientInteractive | ClientPluginAuthLenencClientData |
	ClientSessionTrack | ClientDeprecateEOF | ClientIgnoreSpace | ClientODBC | ClientNoSchema |
	ClientCanHandleExpiredPasswords | ClientIgnoreSIGPIPE | ClientCompress

// Credentials looks up the password of a user; ok is false for an unknown
// user.
type Credentials func(user string) (password string, ok bool)

// ServerConfig configures the server side of the handshake.
type ServerConfig struct {
	ServerVersion string
	ConnectionID  uint32
	// Capabilities announced; DefaultServerCapabilities when zero.
	Capabilities uint32
	// ExtendedCapabilities are MariaDB extended capabilities; when non-zero
	// the server announces itself as MariaDB (CLIENT_MYSQL cleared).
	ExtendedCapabilities uint32
	// TLS, when set, lets clients upgrade with an SSLRequest.
	TLS *tls.Config
	// RequireTLS refuses clients that do not upgrade.
	RequireTLS bool
	// AuthPlugin is announced in the handshake (mysql_native_password
	// when empty).
	AuthPlugin string
	// RSAKey returns the key that serves caching_sha2_password full
	// authentication without TLS; called only when a client needs it.
	RSAKey func() *rsa.PrivateKey
	// Users returns a user's password.
	Users Credentials
	// VerifyNative, when set, verifies a mysql_native_password response of
	// a user Users does not know (accounts kept as hashes); clients of such
	// users that answer with another plugin are switched to it.
	VerifyNative func(info *HandshakeInfo, response []byte) bool
	// Sha2Cache remembers users that passed full caching_sha2 auth, so
	// that later logins take the fast path (as MySQL does).
	Sha2Cache *sync.Map
	// Status and Collation are the status flags and collation id of the
	// greeting (StatusAutocommit and DefaultCollationID when zero); Status
	// is also the status of the OK that ends the handshake.
	Status    uint16
	Collation uint8
	// CheckCollation, when set, runs for the client's collation id before
	// its credentials are checked (MariaDB refuses some character sets
	// there); its error is sent and the handshake fails.
	CheckCollation func(id uint8) error
	// AfterAuth, when set, runs once the credentials are verified and
	// before the OK is sent; an error is sent instead of the OK (e.g. an
	// unknown default schema) and the handshake fails.
	AfterAuth func(info *HandshakeInfo) error
	// MaxPacketSize bounds every packet of the connection phase
	// (DefaultHandshakePacketSize when zero): a stranger that has not
	// logged in cannot make the proxy buffer more.
	MaxPacketSize int
}

// DefaultHandshakePacketSize is the largest packet a client may send before
// it is authenticated: a handshake response with a 128-character user, a
// 64-character schema, auth data and connect attributes fits many times.
const DefaultHandshakePacketSize = 16 * 1024

// MaxUserNameChars is MariaDB's USERNAME_CHAR_LENGTH: a longer user name in
// a handshake is cut to it (and so never matches an account), as MariaDB
// does.
const MaxUserNameChars = 128

// TruncateUserName cuts a user name sent by a client to MaxUserNameChars
// characters.
func TruncateUserName(u string) string {
	if len(u) <= MaxUserNameChars {
		return u
	}
	n := 0
	for i := range u {
		if n == MaxUserNameChars {
			return u[:i]
		}
		n++
	}
	return u
}

// ErrRejected is wrapped by handshake errors after AfterAuth refused.
var ErrRejected = errors.New("connection rejected")

func authOK(c *Conn, cfg *ServerConfig, info *HandshakeInfo) error {
	if cfg.AfterAuth != nil {
		if err := cfg.AfterAuth(info); err != nil {
			var me *Error
			if !errors.As(err, &me) {
				me = NewError(ErrCodeUnknown, "HY000", "%s", err.Error())
			}
			return sendErr(c, me, ErrRejected)
		}
	}
	status := cfg.Status
	if status == 0 {
		status = StatusAutocommit
	}
	return c.WritePacketFlush(AppendOK(nil, OKHeader, &OK{Status: status}, info.Capabilities))
}

// HandshakeInfo is what the client sent in its handshake response.
type HandshakeInfo struct {
	User         string
	DB           string
	Capabilities uint32 // client capabilities intersected with the server's
	ExtCaps      uint32 // MariaDB extended capabilities (intersected)
	Collation    uint8
	MaxPacket    uint32
	AuthPlugin   string
	Attrs        []byte // raw lenenc key/value block
	TLS          bool
	Salt         []byte

	authData []byte
}

// AccessDenied builds MySQL's 1045 error for a user and client host.
func AccessDenied(user string, addr net.Addr, usedPassword bool) *Error {
	host := "unknown"
	if addr != nil {
		if h, _, err := net.SplitHostPort(addr.String()); err == nil {
			host = h
		}
	}
	yes := "NO"
	if usedPassword {
		yes = "YES"
	}
	return NewError(ErrCodeAccessDenied, "28000", "Access denied for user '%s'@'%s' (using password: %s)", user, host, yes)
}

// ErrAuthFailed is wrapped by errors returned after an ERR packet was sent
// to the client for a failed login.
var ErrAuthFailed = errors.New("authentication failed")

// ServerHandshake runs the server side of the connection phase: greeting,
// optional TLS upgrade, handshake response, authentication. On failure the
// appropriate ERR packet has already been sent when possible; the caller
// closes the connection.
func ServerHandshake(c *Conn, cfg *ServerConfig) (*HandshakeInfo, error) {
	caps := cfg.Capabilities
	if caps == 0 {
		caps = DefaultServerCapabilities
	}
	if cfg.TLS != nil {
		caps |= ClientSSL
	} else {
		caps &^= ClientSSL
	}
	if cfg.ExtendedCapabilities != 0 {
		caps &^= ClientLongPassword
	}
	plugin := cfg.AuthPlugin
	if plugin == "" {
		plugin = AuthNativePassword
	}
	version := cfg.ServerVersion
	if version == "" {
		version = DefaultServerVersion
	}
	salt := NewSalt()
	c.MaxPacketSize = cfg.MaxPacketSize
	if c.MaxPacketSize <= 0 {
		c.MaxPacketSize = DefaultHandshakePacketSize
	}

	c.ResetSeq()
	g := make([]byte, 0, 128)
	g = append(g, 10)
	g = append(g, version...)
	g = append(g, 0)
	g = appendUint32(g, cfg.ConnectionID)
	g = append(g, salt[:8]...)
	g = append(g, 0)
	g = appendUint16(g, uint16(caps))
	greetColl, greetStatus := cfg.Collation, cfg.Status
	if greetColl == 0 {
		greetColl = DefaultCollationID
	}
	if greetStatus == 0 {
		greetStatus = StatusAutocommit
	}
	g = append(g, greetColl)
	g = appendUint16(g, greetStatus)
	g = appendUint16(g, uint16(caps>>16))
	g = append(g, 21)
	g = append(g, 0, 0, 0, 0, 0, 0)
	g = appendUint32(g, cfg.ExtendedCapabilities)
	g = append(g, salt[8:]...)
	g = append(g, 0)
	g = append(g, plugin...)
	g = append(g, 0)
	if err := c.WritePacketFlush(g); err != nil {
		return nil, fmt.Errorf("send handshake: %w", err)
	}

	p, err := c.ReadPacket()
	if err != nil {
		return nil, readFailed(c, "read handshake response", err)
	}
	info := &HandshakeInfo{Salt: salt}
	if len(p) < 32 {
		return nil, sendErr(c, NewError(ErrCodeHandshake, "08S01", "Bad handshake"), ErrMalformed)
	}
	clientCaps := binary.LittleEndian.Uint32(p)
	if clientCaps&ClientProtocol41 == 0 {
		return nil, sendErr(c, NewError(ErrCodeHandshake, "08S01", "Bad handshake: protocol 4.1 required"), ErrMalformed)
	}
	if clientCaps&ClientSSL != 0 && caps&ClientSSL != 0 {
		if len(p) != 32 {
			// A handshake response claiming SSL without upgrading.
			return nil, sendErr(c, NewError(ErrCodeHandshake, "08S01", "Bad handshake"), ErrMalformed)
		}
		tc := tls.Server(c.transportForUpgrade(), cfg.TLS)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		c.replaceTransport(tc)
		info.TLS = true
		if p, err = c.ReadPacket(); err != nil {
			return nil, readFailed(c, "read handshake response after tls", err)
		}
		if len(p) < 32 {
			return nil, sendErr(c, NewError(ErrCodeHandshake, "08S01", "Bad handshake"), ErrMalformed)
		}
		clientCaps = binary.LittleEndian.Uint32(p)
	} else if cfg.RequireTLS {
		return nil, sendErr(c, NewError(ErrCodeAccessDenied, "28000", "Connections using insecure transport are prohibited"), ErrAuthFailed)
	}
	if err := parseHandshakeResponse(p, clientCaps, info); err != nil {
		return nil, sendErr(c, NewError(ErrCodeHandshake, "08S01", "Bad handshake"), err)
	}
	info.Capabilities = clientCaps & caps
	if caps&ClientLongPassword == 0 { // we announced MariaDB extended caps
		info.ExtCaps &= cfg.ExtendedCapabilities
	} else {
		info.ExtCaps = 0
	}
	if cfg.CheckCollation != nil {
		if err := cfg.CheckCollation(info.Collation); err != nil {
			var me *Error
			if !errors.As(err, &me) {
				me = NewError(ErrCodeUnknown, "HY000", "%s", err.Error())
			}
			return nil, sendErr(c, me, ErrRejected)
		}
	}
	authData := info.authData
	info.authData = nil
	if err := Authenticate(c, cfg, info, plugin, authData); err != nil {
		return nil, err
	}
	return info, nil
}

func parseHandshakeResponse(p []byte, caps uint32, info *HandshakeInfo) error {
	info.MaxPacket = binary.LittleEndian.Uint32(p[4:])
	info.Collation = p[8]
	info.ExtCaps = binary.LittleEndian.Uint32(p[28:])
	rest := p[32:]
	user, n, err := readNulString(rest)
	if err != nil {
		return err
	}
	info.User = TruncateUserName(user)
	rest = rest[n:]
	switch {
	case caps&ClientPluginAuthLenencClientData != 0:
		d, _, n, err := ReadLenEncBytes(rest)
		if err != nil {
			return err
		}
		info.authData = d
		rest = rest[n:]
	case caps&ClientSecureConnection != 0:
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return ErrMalformed
		}
		info.authData = rest[1 : 1+int(rest[0])]
		rest = rest[1+int(rest[0]):]
	default:
		s, n, err := readNulString(rest)
		if err != nil {
			return err
		}
		info.authData = []byte(s)
		rest = rest[n:]
	}
	if caps&ClientConnectWithDB != 0 && len(rest) > 0 {
		db, n, err := readNulString(rest)
		if err != nil {
			return err
		}
		info.DB = db
		rest = rest[n:]
	}
	if caps&ClientPluginAuth != 0 && len(rest) > 0 {
		pl, n, err := readNulString(rest)
		if err != nil {
			// Some clients omit the terminating NUL at the end.
			pl, n = string(rest), len(rest)
		}
		info.AuthPlugin = pl
		rest = rest[n:]
	}
	if caps&ClientConnectAttrs != 0 && len(rest) > 0 {
		a, _, _, err := ReadLenEncBytes(rest)
		if err != nil {
			return err
		}
		info.Attrs = bytes.Clone(a)
	}
	info.authData = bytes.Clone(info.authData)
	return nil
}

// readFailed answers a failed read of the connection phase as MariaDB does
// (ERR 1153 for a packet too large, 1156 out of order) and wraps err.
func readFailed(c *Conn, what string, err error) error {
	if e := ProtocolError(err); e != nil {
		if errors.Is(err, ErrPacketSequence) {
			c.SetSeq(0) // MariaDB answers with sequence 0
		}
		return sendErr(c, e, fmt.Errorf("%s: %w", what, err))
	}
	return fmt.Errorf("%s: %w", what, err)
}

func sendErr(c *Conn, e *Error, cause error) error {
	_ = c.WritePacketFlush(AppendErr(nil, e))
	if cause == nil {
		return e
	}
	return fmt.Errorf("%w: %w", cause, e)
}

// Authenticate verifies a user's auth response (from a handshake response or
// COM_CHANGE_USER), running auth switch and caching_sha2 exchanges as
// needed, and sends OK on success or ERR 1045 on failure.
func Authenticate(c *Conn, cfg *ServerConfig, info *HandshakeInfo, announced string, authData []byte) error {
	password, known := cfg.Users(info.User)
	plugin := info.AuthPlugin
	if plugin == "" {
		plugin = AuthNativePassword
		if info.Capabilities&ClientPluginAuth != 0 {
			plugin = announced
		}
	}
	switchNative := cfg.VerifyNative != nil && !known && plugin != AuthNativePassword
	if switchNative {
		announced = AuthNativePassword
	}
	if switchNative || (plugin != AuthNativePassword && plugin != AuthCachingSha2) {
		// Ask the client to switch to the plugin we announced.
		sw := []byte{AuthSwitchRequest}
		sw = append(sw, announced...)
		sw = append(sw, 0)
		sw = append(sw, info.Salt...)
		sw = append(sw, 0)
		if err := c.WritePacketFlush(sw); err != nil {
			return err
		}
		p, err := c.ReadPacket()
		if err != nil {
			return readFailed(c, "read auth switch response", err)
		}
		authData = bytes.Clone(p)
		plugin = announced
	}
	info.AuthPlugin = plugin
	denied := func() error {
		return sendErr(c, AccessDenied(info.User, c.tcp.RemoteAddr(), len(authData) > 0), ErrAuthFailed)
	}
	if plugin == AuthNativePassword {
		if !known && cfg.VerifyNative != nil {
			if !cfg.VerifyNative(info, authData) {
				return denied()
			}
			return authOK(c, cfg, info)
		}
		if !known || !CheckScramble(plugin, info.Salt, authData, password) {
			return denied()
		}
		return authOK(c, cfg, info)
	}

	// caching_sha2_password.
	if known && password == "" && (len(authData) == 0 || (len(authData) == 1 && authData[0] == 0)) {
		return authOK(c, cfg, info)
	}
	key := ""
	if known {
		h := sha256.Sum256([]byte(info.User + "\x00" + password))
		key = string(h[:])
	}
	if known && cfg.Sha2Cache != nil && CheckScramble(plugin, info.Salt, authData, password) {
		if _, cached := cfg.Sha2Cache.Load(key); cached {
			if err := c.WritePacket([]byte{AuthMoreData, cachingSha2FastOK}); err != nil {
				return err
			}
			return authOK(c, cfg, info)
		}
	}
	// Full authentication.
	if err := c.WritePacketFlush([]byte{AuthMoreData, cachingSha2FullAuth}); err != nil {
		return err
	}
	p, err := c.ReadPacket()
	if err != nil {
		return readFailed(c, "read full auth", err)
	}
	var clear string
	switch {
	case info.TLS:
		clear = string(bytes.TrimRight(p, "\x00"))
	case len(p) == 1 && p[0] == cachingSha2RequestKey:
		key := rsaKeyOf(cfg)
		if key == nil {
			return denied()
		}
		if err := c.WritePacketFlush(append([]byte{AuthMoreData}, PublicKeyPEM(&key.PublicKey)...)); err != nil {
			return err
		}
		enc, err := c.ReadPacket()
		if err != nil {
			return readFailed(c, "read encrypted password", err)
		}
		if clear, err = DecryptPassword(enc, info.Salt, key); err != nil {
			return denied()
		}
	default:
		key := rsaKeyOf(cfg)
		if key == nil || len(p) != key.Size() {
			return denied()
		}
		if clear, err = DecryptPassword(p, info.Salt, key); err != nil {
			return denied()
		}
	}
	if !known || clear != password {
		return denied()
	}
	if cfg.Sha2Cache != nil {
		cfg.Sha2Cache.Store(key, struct{}{})
	}
	return authOK(c, cfg, info)
}

func rsaKeyOf(cfg *ServerConfig) *rsa.PrivateKey {
	if cfg.RSAKey == nil {
		return nil
	}
	return cfg.RSAKey()
}
