package proxyconfig

import (
	"time"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig/duration"
)

// Duration is a time.Duration written as a Go duration string ("5s").
type Duration = duration.Duration

// D is a convenience constructor.
func D(d time.Duration) Duration { return Duration{Duration: d} }
