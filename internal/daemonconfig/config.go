// Package daemonconfig is pisa-daemon's configuration schema: plain types
// and their strict decoding, shared by the daemon (internal/daemon) and the
// controller that builds and serves them (internal/controller/builder,
// internal/configserver). It imports nothing of the programs that use it.
package daemonconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Config is pisa-daemon's configuration: Pisanix's standalone TOML file
// (§5 of the spec) and the controller's daemonconfigs JSON use the same
// keys.
//
//	[global]                 # optional; --global-* flags take precedence
//	egress_device = "eth0"
//	bridge_device = "cni0"
//	[[app]]
//	name = "test1"
//	[[app.service]]
//	name = "svc"
//	[app.service.qos_group]
//	rate = "10mbit"
//	ceil = "20mbit"          # optional, defaults to rate
//	[[app.service.endpoints]]
//	ip = "10.0.0.5"          # IPv4, IPv6 or a host name
//	port = 3306
type Config struct {
	// Version is the controller's config version ("" in standalone mode).
	Version string  `toml:"-" json:"version,omitempty"`
	Global  *Global `toml:"global,omitempty" json:"global,omitempty"`
	App     []App   `toml:"app" json:"app"`
}

// Global holds the devices; Pisanix required it, here it is optional.
type Global struct {
	EgressDevice string `toml:"egress_device" json:"egress_device,omitempty"`
	BridgeDevice string `toml:"bridge_device" json:"bridge_device,omitempty"`
}

// App is a VirtualDatabase.
type App struct {
	Name    string    `toml:"name" json:"name"`
	Service []Service `toml:"service" json:"service"`
}

// Service is one VirtualDatabase service with its QoS claim.
type Service struct {
	Name string `toml:"name" json:"name"`
	// QoSClass is accepted for compatibility with Pisanix and unused.
	QoSClass  string     `toml:"qos_class,omitempty" json:"qos_class,omitempty"`
	QoSGroup  *QoSGroup  `toml:"qos_group,omitempty" json:"qos_group,omitempty"`
	Endpoints []Endpoint `toml:"endpoints" json:"endpoints"`
}

// QoSGroup is a QoSClaim's trafficQoS.qos_group: tc rates.
type QoSGroup struct {
	Rate string `toml:"rate" json:"rate"`
	Ceil string `toml:"ceil,omitempty" json:"ceil,omitempty"`
}

// Endpoint is a database endpoint: IP address or host name, and port.
type Endpoint struct {
	IP   string `toml:"ip" json:"ip"`
	Port int    `toml:"port" json:"port"`
}

// LoadFile reads a standalone TOML configuration. Unknown keys are errors.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseTOML(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseTOML decodes a TOML configuration strictly (unknown keys are errors).
func ParseTOML(data []byte) (*Config, error) {
	cfg := &Config{}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) {
			var msgs []string
			for i := range strict.Errors {
				e := &strict.Errors[i]
				line, _ := e.Position()
				msgs = append(msgs, fmt.Sprintf("line %d: unknown key %q", line, strings.Join(e.Key(), ".")))
			}
			return nil, errors.New(strings.Join(msgs, "; "))
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, col := de.Position()
			return nil, fmt.Errorf("line %d column %d: %s", line, col, strings.TrimPrefix(de.Error(), "toml: "))
		}
		return nil, err
	}
	return cfg, nil
}

// ParseJSON decodes the controller's daemonconfigs JSON. Unknown keys are
// ignored (the controller may add fields); "version" may be a number or a
// string and "global" may be absent.
func ParseJSON(data []byte) (*Config, error) {
	var raw struct {
		Version json.RawMessage `json:"version"`
		Global  *Global         `json:"global"`
		App     []App           `json:"app"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("decode daemon config: %w", err)
	}
	cfg := &Config{Global: raw.Global, App: raw.App}
	if v := bytes.TrimSpace(raw.Version); len(v) > 0 && !bytes.Equal(v, []byte("null")) {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			var n json.Number
			if err := json.Unmarshal(v, &n); err != nil {
				return nil, fmt.Errorf("decode daemon config: version must be a string or a number, got %s", v)
			}
			s = n.String()
		}
		cfg.Version = s
	}
	return cfg, nil
}
