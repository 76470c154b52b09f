package proxyconfig

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Transaction modes of a sharding listener (Listener.TransactionMode).
const (
	TransactionModeXA         = "xa"
	TransactionModeBestEffort = "best_effort"
)

// XA defaults.
const (
	// DefaultXALogDir holds the decision log when proxy.xa.log_file is not
	// set.
	DefaultXALogDir                 = "/var/lib/pisa-proxy"
	DefaultXARecoveryInterval       = 30 * time.Second
	DefaultXALogMaxBytes      int64 = 4 << 20
)

var validProxyID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// EffectiveProxyID returns proxy.xa.proxy_id, or else the host name made
// into a valid id (characters outside [A-Za-z0-9._-] become '-', cut to 32).
func (x XA) EffectiveProxyID() string {
	if x.ProxyID != "" {
		return x.ProxyID
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "pisa-proxy"
	}
	h = strings.Map(func(r rune) rune {
		if r < 128 && validProxyID.MatchString(string(r)) {
			return r
		}
		return '-'
	}, h)
	if len(h) > 32 {
		h = h[:32]
	}
	return h
}

// EffectiveLogFile returns proxy.xa.log_file or its default.
func (x XA) EffectiveLogFile() string {
	if x.LogFile != "" {
		return x.LogFile
	}
	return filepath.Join(DefaultXALogDir, "xa-"+x.EffectiveProxyID()+".log")
}

// EffectiveRecoveryInterval returns proxy.xa.recovery_interval or its
// default.
func (x XA) EffectiveRecoveryInterval() time.Duration {
	if x.RecoveryInterval.Duration > 0 {
		return x.RecoveryInterval.Duration
	}
	return DefaultXARecoveryInterval
}
