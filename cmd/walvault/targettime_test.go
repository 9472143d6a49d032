package main

import (
	"strings"
	"testing"
	"time"
)

// TestParseTargetTime: a time with a numeric offset, Z, UTC or GMT is
// read as that instant; a zone abbreviation is refused, whatever the
// host's zone, since Go reads one the host does not use as UTC (a restore
// to the wrong hour).
func TestParseTargetTime(t *testing.T) {
	want := time.Date(2026, 12, 7, 11, 54, 3, 0, time.UTC)
	for _, in := range []string{
		"2026-12-07 12:54:03+01",
		"2026-12-07 12:54:03+01:00",
		"2026-12-07 06:54:03 -05:00",
		"2026-12-07T11:54:03Z",
		"2026-12-07 11:54:03 UTC",
		"2026-12-07 11:54:03 GMT",
		"2026-12-07 11:54:03 utc",
		"2026-12-07 12:54:03+0100",
		"2026-12-07 06:54:03 -0500",
	} {
		got, err := parseTargetTime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTargetTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	// A host whose zone uses the abbreviation reads it by that zone; one
	// whose zone does not reads it as UTC.
	for _, l := range []*time.Location{time.UTC, time.FixedZone("EST", -5*3600), time.FixedZone("CET", 3600)} {
		t.Run(l.String(), func(t *testing.T) {
			saved := time.Local
			time.Local = l
			defer func() { time.Local = saved }()
			for _, in := range []string{"2026-12-07 12:54:03 CET", "2026-12-07 06:54:03 EST", "2026-12-07 11:54:03 XYZ"} {
				got, err := parseTargetTime(in)
				if err == nil || !strings.Contains(err.Error(), "numeric offset") {
					t.Errorf("parseTargetTime(%q) = %v, %v; want a refusal asking for a numeric offset", in, got, err)
				}
			}
			if _, err := parseTargetTime("2026-12-07 12:54:03"); err == nil {
				t.Error("a time without a zone was accepted")
			}
		})
	}
}

// TestParseTargetTimeNamedZone: a zone of the IANA database (as PostgreSQL
// takes it) gives that zone's offset at that date; a local time the zone
// skips or repeats at a summer-time change is refused, and so is an
// unknown zone.
func TestParseTargetTimeNamedZone(t *testing.T) {
	for in, want := range map[string]time.Time{
		"2026-12-07 12:54:03 Europe/Berlin":    time.Date(2026, 12, 7, 11, 54, 3, 0, time.UTC), // winter: +01
		"2026-07-07 12:54:03 Europe/Berlin":    time.Date(2026, 7, 7, 10, 54, 3, 0, time.UTC),  // summer: +02
		"2026-12-07T06:54:03 America/New_York": time.Date(2026, 12, 7, 11, 54, 3, 0, time.UTC),
		"2026-12-07 06:54:03 america/new_york": time.Date(2026, 12, 7, 11, 54, 3, 0, time.UTC), // any case, as PostgreSQL takes it
	} {
		got, err := parseTargetTime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTargetTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, why := range map[string]string{
		"2026-03-29 02:30:00 Europe/Berlin":  "skip",  // the hour lost
		"2026-10-25 02:30:00 Europe/Berlin":  "twice", // the hour repeated
		"2026-12-07 12:54:03 Europe/Nowhere": "unknown time zone",
	} {
		if _, err := parseTargetTime(in); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("parseTargetTime(%q): %v; want a refusal saying %q", in, err, why)
		}
	}
}
