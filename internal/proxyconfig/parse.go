package proxyconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Format is the encoding of a configuration document.
type Format int

// Supported formats.
const (
	TOML Format = iota
	JSON
)

func (f Format) String() string {
	switch f {
	case TOML:
		return "toml"
	case JSON:
		return "json"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// FormatForPath picks the format from a file extension: ".json" is JSON,
// anything else TOML.
func FormatForPath(path string) Format {
	if strings.EqualFold(filepath.Ext(path), ".json") {
		return JSON
	}
	return TOML
}

// Load reads, decodes, defaults and validates the file at path. Every error
// message is prefixed with path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseFile(path, data)
}

// ParseFile is Load for data already read from path (configsource.File reads it): the format
// comes from the path's extension, and errors name the path.
func ParseFile(path string, data []byte) (*Config, error) {
	if blank(data) {
		// An editor that truncates before it writes, or `: > file`: never
		// take that for a configuration that asks for nothing.
		return nil, fmt.Errorf("%s: %w", path, ErrEmptyFile)
	}
	cfg, err := parse(data, FormatForPath(path), path)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// ErrEmptyFile is returned by Load for a file with nothing but white space
// and comments.
var ErrEmptyFile = errors.New("the file is empty (only white space or comments): refusing it as a configuration")

// blank reports data with nothing but white space and # comments.
func blank(data []byte) bool {
	for _, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			return false
		}
	}
	return true
}

// Parse decodes data strictly (unknown keys are errors), applies defaults
// and validates the result.
func Parse(data []byte, format Format) (*Config, error) {
	return parse(data, format, "")
}

func parse(data []byte, format Format, name string) (*Config, error) {
	cfg, err := Decode(data, format)
	if err != nil {
		return nil, prefixError(name, err)
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, prefixError(name, err)
	}
	return cfg, nil
}

// Decode only decodes data strictly; it neither applies defaults nor
// validates. Errors are a *DecodeErrors.
func Decode(data []byte, format Format) (*Config, error) {
	cfg := new(Config)
	var err error
	switch format {
	case TOML:
		err = decodeTOML(data, cfg)
	case JSON:
		err = decodeJSON(data, cfg)
	default:
		return nil, fmt.Errorf("unknown config format %v", format)
	}
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// KeyError is one decoding problem at a position of the document.
type KeyError struct {
	// Line is 1-based; 0 when unknown.
	Line int
	// Key is the dotted key path ("proxy.config.pool.max_open"); may be empty.
	Key string
	// Msg describes the problem.
	Msg string
}

func (e KeyError) String() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Key != "" && !strings.Contains(e.Msg, strconv.Quote(e.Key)) {
		fmt.Fprintf(&b, "key %q: ", e.Key)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// DecodeErrors lists the decoding problems of a document. Error() puts one
// problem per line, each prefixed with the file name when known.
type DecodeErrors struct {
	File   string
	Errors []KeyError
}

func (e *DecodeErrors) Error() string {
	lines := make([]string, len(e.Errors))
	for i, ke := range e.Errors {
		if e.File != "" {
			lines[i] = e.File + ": " + ke.String()
		} else {
			lines[i] = ke.String()
		}
	}
	return strings.Join(lines, "\n")
}

func prefixError(name string, err error) error {
	if name == "" {
		return err
	}
	var de *DecodeErrors
	if errors.As(err, &de) {
		de.File = name
		return de
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		ve.File = name
		return ve
	}
	return fmt.Errorf("%s: %w", name, err)
}

// ---- TOML ----

func decodeTOML(data []byte, cfg *Config) error {
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(cfg)
	if err == nil {
		return nil
	}
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		out := &DecodeErrors{}
		for i := range strict.Errors {
			e := &strict.Errors[i]
			line, _ := e.Position()
			key := strings.Join(e.Key(), ".")
			out.Errors = append(out.Errors, KeyError{Line: line, Key: key, Msg: fmt.Sprintf("unknown key %q", key)})
		}
		return out
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		msg = strings.Replace(msg, "cannot decode TOML ", "cannot decode ", 1)
		msg = structFieldRE.ReplaceAllString(msg, "into ")
		return &DecodeErrors{Errors: []KeyError{{Line: line, Key: strings.Join(de.Key(), "."), Msg: msg}}}
	}
	// Errors of encoding.TextUnmarshaler on non-string values (a Duration
	// written as a number) come back without a position: locate them.
	if found := checkTOMLDurations(data); len(found) > 0 {
		return &DecodeErrors{Errors: found}
	}
	return &DecodeErrors{Errors: []KeyError{{Msg: strings.TrimPrefix(err.Error(), "toml: ")}}}
}

// structFieldRE matches the Go-specific part of go-toml's type mismatch
// message ("into struct field proxyconfig.Listener.PoolSize of type int").
var structFieldRE = regexp.MustCompile(`into struct field \S+ of type `)

// checkTOMLDurations walks the TOML document alongside the Config type and
// reports every Duration-typed key whose value is not a valid duration
// string.
func checkTOMLDurations(data []byte) []KeyError {
	var p unstable.Parser
	p.Reset(data)
	root := reflect.TypeFor[Config]()
	var table []string
	var out []KeyError
	var check func(path []string, v *unstable.Node)
	check = func(path []string, v *unstable.Node) {
		t := tomlTypeAt(root, path)
		if t == nil {
			return
		}
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		switch {
		case t == durationType:
			var msg string
			if v.Kind != unstable.String {
				msg = fmt.Sprintf("invalid duration %s: want a string such as \"5s\", \"250ms\" or \"1h\"", p.Raw(v.Raw))
			} else if err := new(Duration).UnmarshalText(v.Data); err != nil {
				msg = err.Error()
			}
			if msg != "" {
				out = append(out, KeyError{Line: p.Shape(v.Raw).Start.Line, Key: strings.Join(path, "."), Msg: msg})
			}
		case v.Kind == unstable.InlineTable:
			it := v.Children()
			for it.Next() {
				kv := it.Node()
				if kv.Kind == unstable.KeyValue {
					check(append(append([]string(nil), path...), tomlKey(kv)...), kv.Value())
				}
			}
		case v.Kind == unstable.Array:
			it := v.Children()
			for it.Next() {
				check(path, it.Node())
			}
		}
	}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = tomlKey(e)
		case unstable.KeyValue:
			check(append(append([]string(nil), table...), tomlKey(e)...), e.Value())
		}
	}
	return out
}

func tomlKey(n *unstable.Node) []string {
	var parts []string
	it := n.Key()
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}

// tomlTypeAt resolves the Go type a dotted TOML key path decodes into, or
// nil when the path does not exist.
func tomlTypeAt(t reflect.Type, path []string) reflect.Type {
	for _, name := range path {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == durationType {
			return nil
		}
		ft, ok := fieldByTag(t, "toml", name)
		if !ok {
			return nil
		}
		t = ft
	}
	return t
}

// ---- JSON ----

func decodeJSON(data []byte, cfg *Config) error {
	// First pass: find unknown keys and bad durations with their paths and
	// lines, so that all of them are reported (encoding/json stops at the
	// first and does not say where it is).
	if problems, ok := checkJSON(data); ok && len(problems) > 0 {
		return &DecodeErrors{Errors: problems}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(cfg)
	if err == nil {
		// Trailing garbage after the document.
		if _, terr := dec.Token(); terr != io.EOF {
			return &DecodeErrors{Errors: []KeyError{{
				Line: lineAt(data, dec.InputOffset()),
				Msg:  "unexpected data after the top-level JSON value",
			}}}
		}
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return &DecodeErrors{Errors: []KeyError{{
			Line: lineAt(data, syn.Offset),
			Msg:  fmt.Sprintf("%s (offset %d)", strings.TrimPrefix(syn.Error(), "json: "), syn.Offset),
		}}}
	case errors.As(err, &typ):
		return &DecodeErrors{Errors: []KeyError{{
			Line: lineAt(data, typ.Offset),
			Key:  typ.Field,
			Msg:  fmt.Sprintf("cannot decode %s into %s (offset %d)", typ.Value, typ.Type, typ.Offset),
		}}}
	case errors.Is(err, io.EOF):
		return &DecodeErrors{Errors: []KeyError{{Msg: "empty JSON document"}}}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &DecodeErrors{Errors: []KeyError{{Line: lineAt(data, int64(len(data))), Msg: "unexpected end of JSON input"}}}
	}
	return &DecodeErrors{Errors: []KeyError{{Msg: strings.TrimPrefix(err.Error(), "json: ")}}}
}

// lineAt converts a byte offset into a 1-based line number.
func lineAt(data []byte, off int64) int {
	if off < 0 {
		off = 0
	}
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return bytes.Count(data[:off], []byte("\n")) + 1
}

var (
	durationType        = reflect.TypeFor[Duration]()
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

// checkJSON walks the JSON token stream alongside the Config type and
// returns every object key that has no matching field and every invalid
// Duration value, with their lines. ok is false when the document is not
// well-formed; the real decoder then reports that.
func checkJSON(data []byte) (problems []KeyError, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	w := jsonWalker{data: data, dec: dec}
	if err := w.value(reflect.TypeFor[Config](), ""); err != nil {
		return nil, false
	}
	return w.problems, true
}

type jsonWalker struct {
	data []byte
	dec  *json.Decoder
	// problems are unknown keys and invalid durations.
	problems []KeyError
}

// value consumes one JSON value that is to be decoded into t.
func (w *jsonWalker) value(t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	if t == durationType && tok != nil {
		var msg string
		if str, ok := tok.(string); !ok {
			shown := fmt.Sprint(tok)
			if _, isDelim := tok.(json.Delim); isDelim {
				shown = "of type " + map[json.Delim]string{'{': "object", '[': "array"}[tok.(json.Delim)]
			}
			msg = fmt.Sprintf("invalid duration %s: want a string such as \"5s\", \"250ms\" or \"1h\"", shown)
		} else if err := new(Duration).UnmarshalText([]byte(str)); err != nil {
			msg = err.Error()
		}
		if msg != "" {
			w.problems = append(w.problems, KeyError{Line: lineAt(w.data, w.dec.InputOffset()), Key: path, Msg: msg})
		}
	}
	delim, isDelim := tok.(json.Delim)
	if !isDelim {
		return nil // scalar
	}
	// Types with their own decoding are opaque to the walker.
	if t != nil && (t == durationType || reflect.PointerTo(t).Implements(jsonUnmarshalerType)) {
		t = nil
	}
	switch delim {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; w.dec.More(); i++ {
			if err := w.value(elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		_, err = w.dec.Token() // ']'
		return err
	case '{':
		for w.dec.More() {
			ktok, err := w.dec.Token()
			if err != nil {
				return err
			}
			key, _ := ktok.(string)
			keyPath := key
			if path != "" {
				keyPath = path + "." + key
			}
			var ft reflect.Type
			switch {
			case t == nil:
			case t.Kind() == reflect.Struct:
				f, found := fieldByTag(t, "json", key)
				if !found {
					w.problems = append(w.problems, KeyError{
						Line: lineAt(w.data, w.dec.InputOffset()),
						Key:  keyPath,
						Msg:  fmt.Sprintf("unknown key %q", keyPath),
					})
				}
				ft = f
			case t.Kind() == reflect.Map:
				ft = t.Elem()
			}
			if err := w.value(ft, keyPath); err != nil {
				return err
			}
		}
		_, err = w.dec.Token() // '}'
		return err
	}
	return nil
}

// fieldByTag finds the field of struct t that key decodes into, like
// encoding/json and go-toml do: exact tag match first, then
// case-insensitive, following embedded structs.
func fieldByTag(t reflect.Type, tagName, key string) (reflect.Type, bool) {
	var fold reflect.Type
	foundFold := false
	var visit func(t reflect.Type) (reflect.Type, bool)
	visit = func(t reflect.Type) (reflect.Type, bool) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get(tagName)
			name, _, _ := strings.Cut(tag, ",")
			if name == "-" && tag == "-" {
				continue
			}
			if f.Anonymous && name == "" {
				et := f.Type
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					if ft, ok := visit(et); ok {
						return ft, true
					}
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if name == key {
				return f.Type, true
			}
			if !foundFold && strings.EqualFold(name, key) {
				fold, foundFold = f.Type, true
			}
		}
		return nil, false
	}
	if ft, ok := visit(t); ok {
		return ft, true
	}
	return fold, foundFold
}
