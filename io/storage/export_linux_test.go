package storage

// ForgetMapCosts drops the per-file-system map-cost measurements, so that
// a test's decision does not depend on which tests measured before it.
func ForgetMapCosts() { mapCosts.Clear() }
