package backend

import "context"

// WithAdminConn runs run on a short-lived connection of its own (not taken
// from the pool nor counted by it, closed afterwards), bounded by ctx: for
// periodic administrative work such as XA recovery, whose connections must
// not sit idle in the pool.
func (p *Pool) WithAdminConn(ctx context.Context, run func(c *Conn) error) error {
	return p.adminConn(ctx, run)
}
