// Package open is the one place that lists the storage backends: it turns a
// repository URL (file:///path or s3://bucket/prefix) into a storage.Backend.
// Backends do not register themselves; adding one means adding a case here.
//
// Stacked is the one function commands get a backend from: Open, then
// storage.Stack. The stacking order itself lives in storage (stack.go),
// which knows every decorator but may not import the concrete backends;
// this package knows the backends, so it joins the two.
//
// A URL that names no repository (a file:// directory that is missing) is
// a ConfigError: bad configuration, not a failing storage.
package open
