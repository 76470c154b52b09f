package mysql

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// BackendCapabilities are the capabilities the proxy asks of backends.
// CLIENT_DEPRECATE_EOF is deliberately off: backends send classic EOF
// packets and the proxy converts for clients that negotiated it.
const BackendCapabilities = ClientLongPassword | ClientLongFlag | ClientProtocol41 |
	ClientTransactions | ClientSecureConnection | ClientMultiStatements | ClientMultiResults |
	ClientPSMultiResults | ClientPluginAuth | ClientPluginAuthLenencClientData |
	ClientConnectAttrs | ClientSessionTrack | ClientLocalFiles | ClientInteractive

// ClientConfig configures the client side of a handshake (proxy → backend).
type ClientConfig struct {
	User     string
	Password string
	// PasswordSHA1, when set, stands for the password: SHA1(password), all
	// mysql_native_password needs (accounts the proxy verified against the
	// server's stored hash). Other plugins then fail.
	PasswordSHA1 []byte
	DB           string
	// TLS, when set, upgrades the connection; the server must support it
	// unless TLSOptional is set (then a server without TLS is used
	// without).
	TLS         *tls.Config
	TLSOptional bool
	// Collation sent in the handshake (utf8mb4_general_ci when zero).
	Collation uint8
	// Extra capabilities (e.g. ClientFoundRows).
	Capabilities uint32
	// ClearCapabilities are left out of BackendCapabilities (tests that
	// act as a client without e.g. CLIENT_SESSION_TRACK).
	ClearCapabilities uint32
	// ExtCaps are MariaDB extended capabilities to request when the
	// server offers them.
	ExtCaps uint32
	// Attrs is a raw lenenc-encoded key/value attribute block.
	Attrs []byte
}

// ServerInfo is what a backend told us in its handshake.
type ServerInfo struct {
	ServerVersion string
	ConnectionID  uint32
	Capabilities  uint32 // negotiated
	ExtCaps       uint32 // negotiated MariaDB extended capabilities
	Collation     uint8  // the one the proxy sent
	// GreetingCollation is the collation id of the server's greeting.
	GreetingCollation uint8
	Status            uint16 // status flags of the greeting
	AuthPlugin        string
	MariaDB           bool
}

// ClientHandshake runs the client side of the connection phase on c.
func ClientHandshake(c *Conn, cfg *ClientConfig) (*ServerInfo, error) {
	c.ResetSeq()
	p, err := c.ReadPacket()
	if err != nil {
		return nil, fmt.Errorf("read server greeting: %w", err)
	}
	if len(p) > 0 && p[0] == ERRHeader {
		return nil, ParseErr(p)
	}
	si, salt, err := parseGreeting(p)
	if err != nil {
		return nil, err
	}
	caps := (BackendCapabilities | cfg.Capabilities) &^ cfg.ClearCapabilities
	if cfg.DB != "" {
		caps |= ClientConnectWithDB
	}
	if len(cfg.Attrs) == 0 {
		caps &^= ClientConnectAttrs
	}
	useTLS := cfg.TLS != nil
	if useTLS {
		if si.Capabilities&ClientSSL == 0 {
			if !cfg.TLSOptional {
				return nil, errors.New("mysql: backend does not support TLS")
			}
			useTLS = false
		} else {
			caps |= ClientSSL
		}
	}
	caps &= si.Capabilities | ClientLongPassword
	var ext uint32
	if si.MariaDB {
		ext = cfg.ExtCaps & si.ExtCaps
		caps &^= ClientLongPassword
	}
	coll := cfg.Collation
	if coll == 0 {
		coll = DefaultCollationID
	}
	head := make([]byte, 0, 128)
	head = appendUint32(head, caps)
	head = appendUint32(head, MaxPayload)
	head = append(head, coll)
	head = append(head, make([]byte, 19)...)
	head = appendUint32(head, ext)
	if useTLS {
		if err := c.WritePacketFlush(head); err != nil {
			return nil, err
		}
		tc := tls.Client(c.transportForUpgrade(), cfg.TLS)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("backend tls handshake: %w", err)
		}
		c.replaceTransport(tc)
	}
	plugin := si.AuthPlugin
	if plugin != AuthCachingSha2 {
		plugin = AuthNativePassword
	}
	auth := cfg.scramble(plugin, salt)
	resp := head
	resp = append(resp, cfg.User...)
	resp = append(resp, 0)
	resp = AppendLenEncInt(resp, uint64(len(auth)))
	resp = append(resp, auth...)
	if caps&ClientConnectWithDB != 0 {
		resp = append(resp, cfg.DB...)
		resp = append(resp, 0)
	}
	resp = append(resp, plugin...)
	resp = append(resp, 0)
	if caps&ClientConnectAttrs != 0 {
		resp = AppendLenEncInt(resp, uint64(len(cfg.Attrs)))
		resp = append(resp, cfg.Attrs...)
	}
	if err := c.WritePacketFlush(resp); err != nil {
		return nil, err
	}
	si.Capabilities = caps
	si.ExtCaps = ext
	si.Collation = coll
	if err := clientAuth(c, cfg, plugin, salt, c.raw != c.tcp); err != nil {
		return nil, err
	}
	return si, nil
}

// scramble is the auth response for plugin with cfg's credentials.
func (cfg *ClientConfig) scramble(plugin string, salt []byte) []byte {
	if cfg.PasswordSHA1 != nil {
		if plugin == AuthNativePassword {
			return NativeScrambleFromStage1(salt, cfg.PasswordSHA1)
		}
		return nil // cannot: the server will refuse
	}
	return scrambleFor(plugin, salt, cfg.Password)
}

func scrambleFor(plugin string, salt []byte, password string) []byte {
	if plugin == AuthCachingSha2 {
		return ScrambleCachingSha2(salt, password)
	}
	return ScrambleNative(salt, password)
}

func parseGreeting(p []byte) (*ServerInfo, []byte, error) {
	if len(p) < 1 || p[0] != 10 {
		return nil, nil, fmt.Errorf("mysql: unsupported protocol version in greeting")
	}
	version, n, err := readNulString(p[1:])
	if err != nil {
		return nil, nil, err
	}
	rest := p[1+n:]
	if len(rest) < 4+8+1+2 {
		return nil, nil, ErrMalformed
	}
	si := &ServerInfo{ServerVersion: version, MariaDB: strings.Contains(version, "MariaDB")}
	si.ConnectionID = binary.LittleEndian.Uint32(rest)
	salt := append([]byte(nil), rest[4:12]...)
	caps := uint32(binary.LittleEndian.Uint16(rest[13:]))
	rest = rest[15:]
	if len(rest) >= 16 {
		si.Collation = rest[0]
		si.GreetingCollation = rest[0]
		si.Status = binary.LittleEndian.Uint16(rest[1:])
		caps |= uint32(binary.LittleEndian.Uint16(rest[3:])) << 16
		saltLen := int(rest[5])
		if caps&ClientLongPassword == 0 {
			si.ExtCaps = binary.LittleEndian.Uint32(rest[12:])
		} else {
			si.MariaDB = false
		}
		rest = rest[16:]
		if caps&ClientSecureConnection != 0 {
			n := saltLen - 8
			if n < 13 {
				n = 13
			}
			if len(rest) < n {
				return nil, nil, ErrMalformed
			}
			salt = append(salt, bytes.TrimRight(rest[:n], "\x00")...)
			rest = rest[n:]
		}
		if caps&ClientPluginAuth != 0 {
			if i := bytes.IndexByte(rest, 0); i >= 0 {
				si.AuthPlugin = string(rest[:i])
			} else {
				si.AuthPlugin = string(rest)
			}
		}
	}
	si.Capabilities = caps
	return si, salt, nil
}

func clientAuth(c *Conn, cfg *ClientConfig, plugin string, salt []byte, secure bool) error {
	for {
		p, err := c.ReadPacket()
		if err != nil {
			return fmt.Errorf("read auth result: %w", err)
		}
		if len(p) == 0 {
			return ErrMalformed
		}
		switch p[0] {
		case OKHeader:
			return nil
		case ERRHeader:
			return ParseErr(p)
		case AuthSwitchRequest:
			name, n, err := readNulString(p[1:])
			if err != nil {
				return err
			}
			salt = bytes.TrimRight(p[1+n:], "\x00")
			salt = append([]byte(nil), salt...)
			plugin = name
			var data []byte
			switch name {
			case AuthNativePassword, AuthCachingSha2:
				data = cfg.scramble(name, salt)
			case AuthClearPassword:
				if !secure {
					return errors.New("mysql: backend asked for a cleartext password without TLS")
				}
				data = append([]byte(cfg.Password), 0)
			default:
				return fmt.Errorf("mysql: backend auth plugin %q is not supported", name)
			}
			if err := c.WritePacketFlush(data); err != nil {
				return err
			}
		case AuthMoreData:
			if plugin != AuthCachingSha2 || len(p) < 2 {
				return fmt.Errorf("mysql: unexpected auth data for %s", plugin)
			}
			switch p[1] {
			case cachingSha2FastOK:
				// OK follows.
			case cachingSha2FullAuth:
				if secure {
					if err := c.WritePacketFlush(append([]byte(cfg.Password), 0)); err != nil {
						return err
					}
					continue
				}
				if err := c.WritePacketFlush([]byte{cachingSha2RequestKey}); err != nil {
					return err
				}
				kp, err := c.ReadPacket()
				if err != nil {
					return err
				}
				if len(kp) < 2 || kp[0] != AuthMoreData {
					if len(kp) > 0 && kp[0] == ERRHeader {
						return ParseErr(kp)
					}
					return errors.New("mysql: backend sent no public key")
				}
				enc, err := EncryptPassword(cfg.Password, salt, kp[1:])
				if err != nil {
					return err
				}
				if err := c.WritePacketFlush(enc); err != nil {
					return err
				}
			default:
				return fmt.Errorf("mysql: unexpected caching_sha2 state %d", p[1])
			}
		default:
			return fmt.Errorf("mysql: unexpected auth packet 0x%02x", p[0])
		}
	}
}
