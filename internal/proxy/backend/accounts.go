package backend

import (
	"encoding/hex"
)

// Account is a client's own database account, verified by the proxy
// against the server's stored hash: connections for its sessions log in as
// it (with SHA1(password), all mysql_native_password needs), so statements
// run with the account's own privileges.
type Account struct {
	User string
	SHA1 []byte // SHA1(password); nil for an account without password
}

// accountPool returns the pool of connections logged in as a (created on
// first use), with the parent pool's endpoint and options.
func (p *Pool) accountPool(a *Account) (*Pool, error) {
	key := a.User + "\x00" + hex.EncodeToString(a.SHA1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrPoolClosed
	}
	if c := p.children[key]; c != nil {
		return c, nil
	}
	ep := p.ep
	ep.User, ep.Password, ep.PasswordSHA1 = a.User, "", a.SHA1
	if ep.PasswordSHA1 == nil {
		ep.PasswordSHA1 = []byte{} // no password: an empty response
	}
	c := NewPool(p.domain, ep, p.opts, p.log.With("account", a.User))
	c.child = true
	if d := p.defaults.Load(); d != nil {
		c.defaults.Store(d)
	}
	if p.children == nil {
		p.children = make(map[string]*Pool)
	}
	p.children[key] = c
	return c, nil
}
