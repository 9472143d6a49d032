package repository_test

import (
	"testing"

	"github.com/walvault/walvault/repository"
	"github.com/walvault/walvault/storage"
	"github.com/walvault/walvault/wal"
)

func TestWALKey(t *testing.T) {
	t.Parallel()
	seg := wal.Segment{Timeline: 1, Log: 0, Seg: 3}
	seg2 := wal.Segment{Timeline: 0x1A, Log: 0xFFFFFFFF, Seg: 0xFF}
	tests := []struct {
		name string
		in   wal.FileName
		c    repository.Compression
		want string
	}{
		{"segment lz4", wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: seg}, repository.LZ4, "wal/00000001/000000010000000000000003.lz4"},
		{"segment none", wal.FileName{Kind: wal.KindSegment, Timeline: 1, Segment: seg}, repository.None, "wal/00000001/000000010000000000000003"},
		{"segment high timeline lz4", wal.FileName{Kind: wal.KindSegment, Timeline: 0x1A, Segment: seg2}, repository.LZ4, "wal/0000001A/0000001AFFFFFFFF000000FF.lz4"},
		{"partial lz4", wal.FileName{Kind: wal.KindPartial, Timeline: 1, Segment: seg}, repository.LZ4, "wal/00000001/000000010000000000000003.partial.lz4"},
		{"partial none", wal.FileName{Kind: wal.KindPartial, Timeline: 1, Segment: seg}, repository.None, "wal/00000001/000000010000000000000003.partial"},
		{"backup history lz4 is stored raw", wal.FileName{Kind: wal.KindBackupHistory, Timeline: 1, Segment: seg, Offset: 0x28}, repository.LZ4, "wal/00000001/000000010000000000000003.00000028.backup"},
		{"backup history none", wal.FileName{Kind: wal.KindBackupHistory, Timeline: 1, Segment: seg, Offset: 0x28}, repository.None, "wal/00000001/000000010000000000000003.00000028.backup"},
		{"timeline history lz4 is stored raw", wal.FileName{Kind: wal.KindTimelineHistory, Timeline: 2}, repository.LZ4, "wal/00000002.history"},
		{"timeline history none", wal.FileName{Kind: wal.KindTimelineHistory, Timeline: 0x1A}, repository.None, "wal/0000001A.history"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := repository.WALKey(tc.in, tc.c)
			if got != tc.want {
				t.Errorf("WALKey(%s, %s): got %q, want %q", tc.in, tc.c, got, tc.want)
			}
			if err := storage.ValidateKey(got); err != nil {
				t.Errorf("WALKey(%s, %s) = %q is not a valid storage key: %v", tc.in, tc.c, got, err)
			}
			// The key is built from the name PostgreSQL uses: parsing the
			// name back gives the same key.
			parsed, err := wal.Classify(tc.in.String())
			if err != nil {
				t.Fatalf("Classify(%q): %v", tc.in.String(), err)
			}
			if again := repository.WALKey(parsed, tc.c); again != got {
				t.Errorf("WALKey(Classify(%q), %s): got %q, want %q", tc.in.String(), tc.c, again, got)
			}
		})
	}
}

func TestCompressed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   wal.Kind
		want bool
	}{
		{wal.KindSegment, true},
		{wal.KindPartial, true},
		{wal.KindBackupHistory, false},
		{wal.KindTimelineHistory, false},
	}
	for _, tc := range tests {
		t.Run(tc.in.String(), func(t *testing.T) {
			if got := repository.Compressed(tc.in); got != tc.want {
				t.Errorf("Compressed(%v): got %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestTimelinePrefix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   wal.TimelineID
		want string
	}{
		{1, "wal/00000001/"},
		{0xAB, "wal/000000AB/"},
		{0xFFFFFFFF, "wal/FFFFFFFF/"},
	}
	for _, tc := range tests {
		if got := repository.TimelinePrefix(tc.in); got != tc.want {
			t.Errorf("TimelinePrefix(%d): got %q, want %q", tc.in, got, tc.want)
		}
	}
}
