package backend

import (
	"strconv"
	"strings"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// Collation is one row of the server's information_schema.COLLATIONS.
type Collation struct {
	Name, Charset string
}

// ServerDefaults is what a fresh direct connection to the endpoint starts
// with, read once from the first connection the pool dials: the handshake
// greeting's status and collation, the collations a client may name in its
// handshake, and the global values a session starts from.
type ServerDefaults struct {
	// GreetingStatus and GreetingCollation are the status flags and
	// collation id of the server's handshake greeting.
	GreetingStatus    uint16
	GreetingCollation uint8
	// Collations by id (ids 1..255 only: the handshake has one byte).
	Collations map[uint8]Collation
	// The global values a session gets when the client's handshake names
	// no collation the server knows.
	CharsetClient, CollationConnection, CharsetResults string
	// The global session trackers a direct client starts with.
	TrackSystemVariables string
	TrackSchema          bool
	TrackStateChange     bool
}

// parserCharsets are character sets MariaDB refuses as a client character
// set (is_supported_parser_charset: mbminlen > 1).
var parserUnsupported = map[string]bool{"ucs2": true, "utf16": true, "utf16le": true, "utf32": true}

// ClientCharsetVars returns the four session variables a direct connection
// whose handshake named collation id gets: the id's character set for
// client, connection and results and the id itself as collation_connection,
// or the server's global values for an id it does not know (and 0). A
// character set MariaDB refuses as a client character set gives its error
// (1231), as the server sends it in the handshake.
func (d *ServerDefaults) ClientCharsetVars(id uint8) (map[string]string, *mysql.Error) {
	if c, ok := d.Collations[id]; ok && id != 0 {
		if parserUnsupported[c.Charset] {
			return nil, mysql.NewError(1231, "42000", "Variable 'character_set_client' can't be set to the value of '%s'", c.Charset)
		}
		return map[string]string{
			"character_set_client":     c.Charset,
			"character_set_connection": c.Charset,
			"character_set_results":    c.Charset,
			"collation_connection":     c.Name,
		}, nil
	}
	return map[string]string{
		"character_set_client":     d.CharsetClient,
		"character_set_connection": d.charsetOf(d.CollationConnection),
		"character_set_results":    d.CharsetResults,
		"collation_connection":     d.CollationConnection,
	}, nil
}

func (d *ServerDefaults) charsetOf(collation string) string {
	for _, c := range d.Collations {
		if c.Name == collation {
			return c.Charset
		}
	}
	if i := strings.IndexByte(collation, '_'); i > 0 {
		return collation[:i]
	}
	return collation
}

// Defaults returns what the pool read from its endpoint, nil until a
// connection was dialed successfully.
func (p *Pool) Defaults() *ServerDefaults { return p.defaults.Load() }

const defaultsSQL = "SELECT @@global.character_set_client, @@global.collation_connection, " +
	"@@global.character_set_results, @@global.session_track_system_variables, " +
	"@@global.session_track_schema, @@global.session_track_state_change"

const collationsSQL = "SELECT ID, COLLATION_NAME, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID BETWEEN 1 AND 255"

// loadDefaults reads the ServerDefaults on c (a freshly dialed connection).
func (c *Conn) loadDefaults() (*ServerDefaults, error) {
	d := &ServerDefaults{
		GreetingStatus:    c.Info.Status,
		GreetingCollation: c.Info.GreetingCollation,
		Collations:        make(map[uint8]Collation, 320),
	}
	row, err := c.queryRow(defaultsSQL)
	if err != nil {
		return nil, err
	}
	if len(row) != 6 {
		return nil, c.fail(mysql.ErrMalformed)
	}
	d.CharsetClient, d.CollationConnection, d.CharsetResults = row[0], row[1], row[2]
	d.TrackSystemVariables = row[3]
	d.TrackSchema = row[4] == "1" || strings.EqualFold(row[4], "ON")
	d.TrackStateChange = row[5] == "1" || strings.EqualFold(row[5], "ON")
	if err := c.writeCommand(mysql.ComQuery, collationsSQL); err != nil {
		return nil, err
	}
	p, err := c.ReadPacket()
	if err != nil {
		return nil, c.fail(err)
	}
	if len(p) > 0 && p[0] == mysql.ERRHeader {
		return nil, mysql.ParseErr(p)
	}
	_, err = c.readResultSet(p, func(row []byte) error {
		var vals [3][]byte
		for i := range vals {
			v, _, n, err := mysql.ReadLenEncBytes(row)
			if err != nil {
				return c.fail(err)
			}
			vals[i] = v
			row = row[n:]
		}
		id, err := strconv.ParseUint(string(vals[0]), 10, 8)
		if err != nil {
			return nil
		}
		d.Collations[uint8(id)] = Collation{Name: string(vals[1]), Charset: string(vals[2])}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// charsetVarsOf returns the character set variables the server gives a
// connection whose handshake named collation id (nil when unknown).
func (d *ServerDefaults) charsetVarsOf(id uint8) map[string]string {
	if d == nil {
		return nil
	}
	vars, err := d.ClientCharsetVars(id)
	if err != nil {
		return nil
	}
	return vars
}

// QueryRow runs sql and returns the first row of its first result set as
// strings (NULL → ""), nil when there is none. An ERR from the server is
// returned as *mysql.Error and c stays usable.
func (c *Conn) QueryRow(sql string) ([]string, error) { return c.queryRow(sql) }
