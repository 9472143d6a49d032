package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/walvault/walvault/crypt"
	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

// ErrConflict: a different file is already archived under this name. Nothing
// was overwritten; a person has to look.
var ErrConflict = errors.New("a different file is already archived under this name")

// settleConflict decides what an ErrExists from the conditional upload
// means. The same checksum is success: PostgreSQL re-runs archive_command
// after a crash, and a retried upload may meet its own first attempt. A
// different checksum is a hard error that names both sides.
//
// In a versioned bucket the archived copy may be hidden behind a delete
// marker (some servers refuse a conditional create over one): its hidden
// version is compared then, with a warning.
func settleConflict(ctx context.Context, b storage.Backend, res Result, ours map[string]string, log *slog.Logger) (Result, error) {
	info, hidden, err := archivedCopy(ctx, b, res.Key)
	if err != nil {
		return Result{}, fmt.Errorf("%s is already archived, but reading the archived copy failed: %w", res.File, err)
	}
	theirs := info.Metadata
	same, err := SameContent(ours, theirs)
	if err != nil {
		return Result{}, fmt.Errorf("%s is already archived in %s, and %w; nothing was overwritten", res.File, b.Location(), err)
	}
	if !same && res.File.Kind == wal.KindTimelineHistory && sameSwitches(ours, theirs) {
		// The same timelines and switch points, other reasons: a copy
		// wal-fetch rebuilt from the metadata (the archived one being
		// encrypted to a key the restore had no more) that a restored
		// server with archive_mode = always archives again (explore25e C).
		// PostgreSQL reads nothing else of it.
		log.Info("already archived: the archived history file records the same timeline switches (its reasons differ)", "file", res.File.String(), "key", res.Key)
		same = true
	}
	if same {
		if hidden {
			log.Warn("already archived, but hidden by a delete marker (someone deleted it without a version id)",
				"segment", res.File.String(), "key", res.Key, "hint", "run `walvault repair` to make it visible again")
		}
		res.AlreadyArchived, res.StoredSize = true, info.Size
		return res, nil
	}
	advice := "If this server was restored or promoted without a new timeline, or another cluster archives to this repository, give it its own repository prefix"
	if branch := branchedOff(ctx, b, res.File, ours); branch != "" {
		advice = branch
	}
	never := "; never delete the archived copy to make this error go away"
	switch h := ours[repository.MetaHost]; {
	case theirs[repository.MetaRawSize] == "" && theirs[repository.MetaSHA256] == "" && theirs[repository.MetaFingerprints] == "":
		// No walvault metadata at all: not WAL walvault stored, but an
		// object someone with write access put at a key walvault had
		// yet to write (explore25a F4).
		advice = "The archived object carries none of walvault's metadata: walvault did not write it, so it is no copy of this cluster's WAL but an object someone with write access to the repository put there (find out who: the credentials may be stolen). Delete it so PostgreSQL's push can store the segment (under Object Lock, once its lock ends); if that is far off, point archive_command at a new repository prefix and take a base backup there"
		never = ""
	case h != "" && h == theirs[repository.MetaHost] && res.File.Kind == wal.KindSegment:
		// One host (or hosts of one name) wrote both: PostgreSQL
		// archives a segment once, so the first copy most likely holds
		// only the start of it.
		advice = fmt.Sprintf("Both copies come from host %s: the archived one most likely holds only the start of this segment: pushed by hand while PostgreSQL was still writing it, or archived by a standby with archive_mode = always that an older walvault's wal-fetch had given a wal-receive partial. Check it with pg_waldump of this server's major version (the end of its WAL lies before the end of the file); then, and only then, delete the archived copy so PostgreSQL's push can store the complete one (under Object Lock, not before its lock expires). If it holds other WAL: %s", h, advice)
		never = ""
	}
	return Result{}, fmt.Errorf("%w: %s in %s\n%s\nnothing was overwritten. %s%s",
		ErrConflict, res.File, b.Location(), DescribeSides(ours, theirs), advice, never)
}

// sameSwitches says whether two history files' metadata record the same
// whole list of timeline switches for the same cluster.
func sameSwitches(ours, theirs map[string]string) bool {
	a, b := ours[repository.MetaHistory], theirs[repository.MetaHistory]
	_, aWhole, aErr := repository.ParseHistoryMeta(ours)
	_, bWhole, bErr := repository.ParseHistoryMeta(theirs)
	return a != "" && a == b && aErr == nil && bErr == nil && aWhole && bWhole &&
		ours[repository.MetaSystemID] != "" && ours[repository.MetaSystemID] == theirs[repository.MetaSystemID]
}

// branchedOff says, for a segment of timeline T whose name holds another
// file, when a later timeline's history (in the repository) branched off T
// at or before the segment's end: the server pushing it is then most
// likely the old primary of a failover, still writing T. "" otherwise, or
// when that cannot be read (the plain advice stands).
func branchedOff(ctx context.Context, b storage.Backend, file wal.FileName, ours map[string]string) string {
	if file.Kind != wal.KindSegment && file.Kind != wal.KindPartial {
		return ""
	}
	size, err := strconv.ParseUint(ours[repository.MetaRawSize], 10, 32)
	if err != nil {
		return ""
	}
	start, err := file.Segment.StartLSN(uint32(size))
	if err != nil {
		return ""
	}
	end := start + wal.LSN(size)
	// Timeline IDs come one after another; a few absent in a row end the
	// search.
	for tli, misses := file.Timeline+1, 0; misses < 4 && tli < file.Timeline+64; tli++ {
		info, err := b.Stat(ctx, repository.WALKey(wal.FileName{Kind: wal.KindTimelineHistory, Timeline: tli}, repository.None))
		if err != nil {
			misses++
			continue
		}
		misses = 0
		entries, _, err := repository.ParseHistoryMeta(info.Metadata)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.Timeline == file.Timeline && e.SwitchPoint < end {
				return fmt.Sprintf("Timeline %d branched off timeline %d at %s, before this segment's end: this server is most likely the old primary of a failover, still writing timeline %d. Stop it, and make it a standby of the new primary (pg_rewind)",
					tli, file.Timeline, e.SwitchPoint, file.Timeline)
			}
		}
	}
	return ""
}

// otherCopy is what archivedCopyKey found: the key of a copy, if any.
type otherCopy struct {
	key string
	err error
}

// archivedCopyKey returns the key under which file is already archived,
// under c's key or another codec's, or "" when every key is absent. Keys
// carry the codec, and the setting may change between two pushes of one
// file (PostgreSQL's retry after a crash, or a split brain pushing a
// different one): the conditional create on c's key alone would store a
// second copy beside the first. c's own key is asked too, though the
// conditional create refuses to replace it: a server that stops honouring
// If-None-Match (a gateway or proxy put in front, a server replaced after
// the repository's first push proved it) would otherwise overwrite an
// archived segment without a word; only a push racing another for the
// same key is left to the conditional create. Costs one HEAD per codec,
// sent at once while the file is encoded; an error other than "absent"
// fails the push, which PostgreSQL retries. A copy hidden behind a delete
// marker is not looked for (that would cost a version listing per push).
func archivedCopyKey(ctx context.Context, b storage.Backend, file wal.FileName, c repository.Compression) (string, error) {
	info, err := repository.StatWALAtOnce(ctx, b, file, c)
	switch {
	case err == nil:
		return info.Key, nil
	case errors.Is(err, storage.ErrNotFound):
		return "", nil
	}
	return "", fmt.Errorf("%s not archived: asking %s whether it already holds a copy failed: %w", file, b.Location(), err)
}

// ErrIncomparable: the archived copy is encrypted to none of the keys this
// push encrypts to, so this host cannot tell whether it holds the same file.
var ErrIncomparable = errors.New("its content cannot be compared with this file")

// SameContent compares the metadata of a WAL object about to be stored
// (ours, as wal-push and wal-receive write it) with the stored copy's
// (theirs): by sha256 in the clear, by a shared recipient's keyed
// fingerprint when encrypted (age ciphertext differs on every push, and no
// sha256 of the plaintext is stored). An error (ErrIncomparable) means
// this host cannot tell.
func SameContent(ours, theirs map[string]string) (bool, error) {
	if ours[repository.MetaRawSize] != theirs[repository.MetaRawSize] {
		return false, nil
	}
	if !repository.EncryptedObject(ours) && !repository.EncryptedObject(theirs) {
		sum := ours[repository.MetaSHA256]
		return sum != "" && theirs[repository.MetaSHA256] == sum, nil
	}
	if repository.EncryptedObject(ours) != repository.EncryptedObject(theirs) {
		return false, nil
	}
	same, comparable := crypt.SameContent(ours[repository.MetaFingerprints], theirs[repository.MetaFingerprints])
	if !comparable {
		return false, fmt.Errorf("%w: the archived copy is encrypted to %v, this copy to %v (add one of its keys to encrypt-to while keys rotate, or compare by hand with wal-fetch and the identity)",
			ErrIncomparable, crypt.RecipientsOf(theirs[repository.MetaFingerprints]), crypt.RecipientsOf(ours[repository.MetaFingerprints]))
	}
	return same, nil
}

// archivedCopy reads the stored object's metadata, or its hidden newest
// version's when a delete marker hides it.
func archivedCopy(ctx context.Context, b storage.Backend, key string) (storage.ObjectInfo, bool, error) {
	info, err := b.Stat(ctx, key)
	if err == nil || !errors.Is(err, storage.ErrNotFound) {
		return info, false, err
	}
	rc, hinfo, herr := repository.OpenHidden(ctx, b, key)
	switch {
	case herr == nil:
		rc.Close() // only the metadata is needed
		return hinfo, true, nil
	case errors.Is(herr, storage.ErrNotFound), errors.Is(herr, repository.ErrVersionsRefused):
		return info, false, err
	}
	return info, false, herr
}

// DescribeSides shows the fields of both copies that tell them apart.
func DescribeSides(ours, theirs map[string]string) string {
	fields := []string{repository.MetaSHA256, repository.MetaFingerprints, repository.MetaRawSize, repository.MetaSystemID, repository.MetaTimeline, repository.MetaHost, repository.MetaPushedAt}
	var b strings.Builder
	for i, side := range []struct {
		label string
		meta  map[string]string
	}{{"  this file:     ", ours}, {"  archived copy: ", theirs}} {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(side.label)
		for j, f := range fields {
			if j > 0 {
				b.WriteString(" ")
			}
			v := side.meta[f]
			if v == "" {
				v = "-"
			}
			fmt.Fprintf(&b, "%s=%s", f, v)
		}
	}
	return b.String()
}
