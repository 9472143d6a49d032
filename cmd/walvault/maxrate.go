package main

// maxRate is the max-rate setting of backup-push and restore: the bytes a
// second they may move, 0 for no limit.
type maxRate struct {
	MaxRate int64
}

// bind binds max-rate; usage says what it limits for the command. Unset
// (empty) means no limit; anything else must be a size above zero, so 0,
// -1, abc and 10XB are usage errors.
func (m *maxRate) bind(b *binder, usage string) {
	b.addUsage("max-rate", usage, func(v string) (err error) {
		if v == "" {
			m.MaxRate = 0
			return nil
		}
		if m.MaxRate, err = parseSize(v); err != nil {
			return invalid("max-rate", "want bytes a second above zero, such as 50MiB or 500KiB (unset it for no limit)")
		}
		return nil
	})
}
