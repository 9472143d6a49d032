package archive

// SettledMargin is how old a file must be when it is pushed ahead for the
// later call to trust it on its inode and change time.
const SettledMargin = settledMargin
