package restore

import (
	"log/slog"

	"github.com/walvault/walvault/storage"
)

// seeHidden wraps b so that restore and wal-fetch read through delete
// markers (storage.ReadHidden): an object hidden by a DELETE without a
// version id is served from its newest version, with a warning. Other
// commands see the repository as it is, so the layer is added here, for
// restore's reads, at the place storage.Stack gives it (outermost).
func seeHidden(b storage.Backend, log *slog.Logger) storage.Backend {
	return storage.ReadHidden(b, log)
}
