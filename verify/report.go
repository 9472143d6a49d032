package verify

import (
	"encoding/json"
	"fmt"
	"github.com/walvault/walvault/internal/units"
	"io"
	"sort"
	"strings"
)

// Kinds of findings. They are part of the --json schema: stable, only ever
// added to.
const (
	// Problems (verify exits non-zero).
	KindNoIdentity          = "no_identity"          // walvault.json is missing or unreadable
	KindWALGap              = "wal_gap"              // segments a backup needs are missing
	KindMissingHistory      = "missing_history"      // a timeline's .history file is missing
	KindBadHistory          = "bad_history"          // a .history file does not parse
	KindWALChecksum         = "wal_checksum"         // --full: a WAL object's size or sha256 is wrong
	KindWALMetadata         = "wal_metadata"         // --full: a WAL object lacks its sha256/raw-size metadata
	KindWALHeader           = "wal_header"           // --full: a segment's header names another segment or cluster
	KindNotDecrypted        = "not_decrypted"        // --full: encrypted objects no key at hand decrypts, not checked
	KindManifestInvalid     = "manifest_invalid"     // a backup manifest does not parse or is inconsistent
	KindPartMissing         = "part_missing"         // a part the manifest lists is missing
	KindPartSize            = "part_size"            // a part's stored size differs from the manifest
	KindPartChecksum        = "part_checksum"        // --full: a part's raw size or sha256 is wrong
	KindHidden              = "hidden"               // an object is hidden behind a delete marker
	KindWALOverwritten      = "wal_overwritten"      // a WAL key holds more than one data version (written over by someone else)
	KindWALSecondCopy       = "wal_second_copy"      // a segment is stored under a second codec's key (put there by someone else)
	KindBackupOverwritten   = "backup_overwritten"   // a key of a backup holds more than one data version (written over by someone else)
	KindPartialChecksum     = "partial_checksum"     // --full: the newest partial of a segment not archived is damaged
	KindBrokenChain         = "broken_chain"         // an incremental backup's parent (or one of its ancestors) is missing or not DONE
	KindIdentityOverwritten = "identity_overwritten" // walvault.json holds a version put over walvault's first (the first is used)
	// Warnings (reported; verify still exits 0).
	KindIncomplete         = "incomplete_backup"     // parts without a manifest (an interrupted backup-push)
	KindWaitingForWAL      = "waiting_for_wal"       // a backup's WAL is not archived yet
	KindUnneededGap        = "unneeded_wal_gap"      // a gap on a timeline no backup leads to
	KindStray              = "stray"                 // an object outside walvault's layout
	KindHiddenUnknown      = "hidden_unchecked"      // the storage could not be asked for hidden objects
	KindOverwrittenUnknown = "overwritten_unchecked" // the storage could not be asked for WAL keys written over
	KindSupersededPartial  = "superseded_partial"    // a wal-receive partial whose segment is archived (walvault delete removes it)
	KindIncompleteUpload   = "incomplete_upload"     // an S3 multipart upload (or a file:// temp file) older than Options.UploadAge (walvault delete aborts it)
	KindUploadsUnknown     = "uploads_unchecked"     // the storage could not be asked for incomplete uploads
	KindHistoryUnread      = "history_unreadable"    // an encrypted .history file without its switches in metadata, and no identity: that switch is not checked
	KindTimelineOverrun    = "timeline_overrun"      // a timeline went on being archived past the point where a later one branched off it
	KindBackupsMisordered  = "backups_misordered"    // two backups' times are in another order than their WAL positions (a clock was off): policy deletes refuse to run
	KindNotLocked          = "not_locked"            // a sampled segment younger than lock_days holds no Object Lock retention (a copy without its locks)
	severityProblem        = "problem"
	severityWarning        = "warning"
	maxFindingsPerKind     = 1000
)

// Finding is one problem or warning.
type Finding struct {
	Kind   string `json:"kind"`
	Key    string `json:"key,omitempty"`
	Detail string `json:"detail"`
	// For wal_gap and unneeded_wal_gap: the timeline and the missing
	// segments (every name when there are at most 10).
	Timeline     uint32   `json:"timeline,omitempty"`
	MissingFirst string   `json:"missing_first,omitempty"`
	MissingLast  string   `json:"missing_last,omitempty"`
	MissingCount uint64   `json:"missing_count,omitempty"`
	Missing      []string `json:"missing,omitempty"`
	// BackupID is set for findings about one backup.
	BackupID string `json:"backup_id,omitempty"`
}

// TimelineReport is one timeline in the report.
type TimelineReport struct {
	Timeline    uint32 `json:"timeline"`
	Parent      uint32 `json:"parent,omitempty"`
	SwitchLSN   string `json:"switch_lsn,omitempty"`
	Oldest      string `json:"oldest,omitempty"`
	Newest      string `json:"newest,omitempty"`
	Segments    uint64 `json:"segments"`
	Partials    int    `json:"partials,omitempty"`
	CheckedFrom string `json:"checked_from,omitempty"`
	CheckedTo   string `json:"checked_to,omitempty"`
	Gaps        int    `json:"gaps"`
	// NeededByBackup: a backup's start leads to this timeline.
	NeededByBackup bool `json:"needed_by_backup"`
	// wal-receive's partials of the timeline (partial/...): how many, and
	// the one with the highest end LSN, whether superseded or not.
	ReceivedPartials int    `json:"received_partials,omitempty"`
	NewestPartial    string `json:"newest_partial,omitempty"`
	NewestPartialEnd string `json:"newest_partial_end_lsn,omitempty"`
	// CheckedToPartial: CheckedTo is held only by the newest partial.
	CheckedToPartial bool `json:"checked_to_partial,omitempty"`
}

// BackupReport is one backup folder in the report.
type BackupReport struct {
	ID string `json:"id"`
	// Status is OK, PROBLEM, INCOMPLETE (no manifest) or WAITING_FOR_WALS.
	Status      string `json:"status"`
	Timeline    uint32 `json:"timeline,omitempty"`
	StartWAL    string `json:"start_wal,omitempty"`
	StopWAL     string `json:"stop_wal,omitempty"`
	Parts       int    `json:"parts"`
	StoredBytes int64  `json:"stored_bytes"`
}

// Summary counts what was looked at.
type Summary struct {
	Problems    int   `json:"problems"`
	Warnings    int   `json:"warnings"`
	WALObjects  int64 `json:"wal_objects"`
	Timelines   int   `json:"timelines"`
	Backups     int   `json:"backups"`
	Hidden      int   `json:"hidden"`
	Strays      int   `json:"strays"`
	ObjectsRead int64 `json:"objects_read"` // --full
	BytesRead   int64 `json:"bytes_read"`   // --full: stored bytes re-read
	// wal-receive's partials (partial/...), and how many of them are
	// superseded by their archived segment.
	ReceivedPartials   int `json:"received_partials"`
	SupersededPartials int `json:"superseded_partials"`
	// Incomplete uploads older than Options.UploadAge (S3 multipart
	// uploads, file:// temp files).
	IncompleteUploads int `json:"incomplete_uploads"`
}

// Report is verify's result and its --json document (see the README,
// "verify --json"). Problems and Warnings are never null in JSON.
type Report struct {
	Repository     string           `json:"repository"`
	SystemID       string           `json:"system_identifier,omitempty"`
	WALSegmentSize uint32           `json:"wal_segment_size,omitempty"`
	Full           bool             `json:"full"`
	OK             bool             `json:"ok"`
	Summary        Summary          `json:"summary"`
	Timelines      []TimelineReport `json:"timelines"`
	Backups        []BackupReport   `json:"backups"`
	Problems       []Finding        `json:"problems"`
	Warnings       []Finding        `json:"warnings"`

	// Notes are the OK lines of the human output, in order.
	notes []string
	// dropped counts findings left out past maxFindingsPerKind.
	dropped map[string]int
	count   map[string]int
}

func newReport(location string, full bool) *Report {
	return &Report{
		Repository: location, Full: full,
		Timelines: []TimelineReport{}, Backups: []BackupReport{},
		Problems: []Finding{}, Warnings: []Finding{},
		dropped: map[string]int{}, count: map[string]int{},
	}
}

// add records a finding, keeping at most maxFindingsPerKind of each kind
// (a repository with a million stray objects must not make a report of a
// million lines); the summary counts them all.
func (r *Report) add(severity string, f Finding) {
	if severity == severityProblem {
		r.Summary.Problems++
	} else {
		r.Summary.Warnings++
	}
	r.count[f.Kind]++
	if r.count[f.Kind] > maxFindingsPerKind {
		r.dropped[f.Kind]++
		return
	}
	if severity == severityProblem {
		r.Problems = append(r.Problems, f)
	} else {
		r.Warnings = append(r.Warnings, f)
	}
}

func (r *Report) problem(f Finding) { r.add(severityProblem, f) }
func (r *Report) warning(f Finding) { r.add(severityWarning, f) }

func (r *Report) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

func (r *Report) finish() { r.OK = r.Summary.Problems == 0 }

// WriteJSON writes the report as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the human report: "OK: ..." lines for what is healthy,
// "WARNING: ..." and "PROBLEM: ..." lines, and a summary line.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, n := range r.notes {
		fmt.Fprintf(&b, "OK: %s\n", n)
	}
	for _, f := range r.Warnings {
		fmt.Fprintf(&b, "WARNING: %s\n", f.Detail)
	}
	for _, f := range r.Problems {
		fmt.Fprintf(&b, "PROBLEM: %s\n", f.Detail)
	}
	kinds := make([]string, 0, len(r.dropped))
	for kind := range r.dropped {
		kinds = append(kinds, kind)
	}
	sort.Strings(kinds)
	for _, kind := range kinds {
		fmt.Fprintf(&b, "... and %d more %s findings not shown\n", r.dropped[kind], kind)
	}
	what := fmt.Sprintf("%s on %s, %s", units.Plural(int(r.Summary.WALObjects), "WAL object"), units.Plural(r.Summary.Timelines, "timeline"), units.Plural(r.Summary.Backups, "backup"))
	if r.Summary.ReceivedPartials > 0 {
		what += ", " + units.Plural(r.Summary.ReceivedPartials, "partial")
	}
	if r.Full {
		what += fmt.Sprintf("; --full re-read %s (%s)", units.Plural(int(r.Summary.ObjectsRead), "object"), units.Bytes(r.Summary.BytesRead))
	} else {
		// Without --full only names, sizes and metadata were compared: a
		// damaged byte inside an object goes unseen, so say so where it is read.
		what += "; contents not read: --full checks every object's checksum"
	}
	verdict := "repository is healthy"
	if !r.OK {
		verdict = "repository has problems"
	}
	fmt.Fprintf(&b, "summary: %s: %s, %s (%s in %s)\n", verdict, units.Plural(r.Summary.Problems, "problem"), units.Plural(r.Summary.Warnings, "warning"), what, r.Repository)
	_, err := io.WriteString(w, b.String())
	return err
}
