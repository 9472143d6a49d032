// Package freelist keeps returned byte buffers of one size for reuse, up to
// a bound. Where a sync.Pool would do, it does not: a Pool drops its
// contents at garbage collections (frequent under a soft memory limit) and
// a quarter of what it is given under the race detector, so reuse would
// depend on the collector; buffers past the bound are left to it.
package freelist
