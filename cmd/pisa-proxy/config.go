package main

import (
	"sync/atomic"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

type atomicConfig struct {
	p atomic.Pointer[proxyconfig.Config]
}

func (a *atomicConfig) store(c *proxyconfig.Config) { a.p.Store(c) }
func (a *atomicConfig) load() *proxyconfig.Config   { return a.p.Load() }
