package proxyconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration written as a Go duration string ("5s",
// "250ms", "1h30m") in both TOML and JSON. A bare "0" is accepted too.
// Numbers without a unit are rejected so that a value is never silently
// read as nanoseconds.
type Duration struct {
	time.Duration
}

// D is a convenience constructor.
func D(d time.Duration) Duration { return Duration{Duration: d} }

// UnmarshalText implements encoding.TextUnmarshaler (used by go-toml and,
// through UnmarshalJSON, by encoding/json).
func (d *Duration) UnmarshalText(text []byte) error {
	s := string(text)
	if s == "0" {
		d.Duration = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a string such as \"5s\", \"250ms\" or \"1h\"", s)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.Duration.String()), nil
}

// UnmarshalJSON accepts a JSON string (see UnmarshalText) or null.
func (d *Duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("invalid duration %s: want a string such as \"5s\", \"250ms\" or \"1h\"", b)
	}
	return d.UnmarshalText([]byte(s))
}

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.Duration.String())
}

// IsZero reports a zero duration (used by omitzero).
func (d Duration) IsZero() bool { return d.Duration == 0 }
