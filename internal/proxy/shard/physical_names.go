package shard

// PhysicalNames returns the physical table names of the sharded tables
// that differ from their logical names, mapped to the logical names, over
// every database (the security claim decrypts the result columns of a
// physical table as its logical table's). A new map; nil for a nil Router.
func (rt *Router) PhysicalNames() map[string]string {
	if rt == nil {
		return nil
	}
	out := map[string]string{}
	for _, m := range rt.showRename {
		for phys, logical := range m {
			out[phys] = logical
		}
	}
	return out
}
