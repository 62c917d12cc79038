package store

// DiskUsage returns the bytes the store's files take on disk (Pebble's
// own account: tables, logs, manifests), or ErrClosed.
func (s *Store) DiskUsage() (uint64, error) {
	var n uint64
	err := s.withDB(func() error {
		n = s.db.Metrics().DiskSpaceUsage()
		return nil
	})
	return n, err
}
