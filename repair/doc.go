// Package repair makes walvault's own objects that a delete marker hides in
// a versioned bucket visible again: the `repair` command.
//
// Read repair.go. Run lists the hidden objects (repository.ListHidden),
// removes their delete markers one by one and lists again, so its report
// says what is still hidden, not what it hoped to fix. Storage that keeps
// no old versions (file://, a bucket without versioning) has nothing hidden.
//
// It must not read configuration or print; cmd/walvault prints the report.
package repair
