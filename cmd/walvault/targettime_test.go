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
		"2026-12-07 12:54:03 Europe/Berlin":       time.Date(2026, 12, 7, 11, 54, 3, 0, time.UTC), // winter: +01
		"2026-07-07 12:54:03 Europe/Berlin":       time.Date(2026, 7, 7, 10, 54, 3, 0, time.UTC),  // summer: +02
		"2026-12-07T06:54:03 America/New_York":    time.Date(2026, 12, 7, 11, 54, 3, 0, time.UTC),
		"2026-12-07 06:54:03 america/new_york":    time.Date(2026, 12, 7, 11, 54, 3, 0, time.UTC), // any case, as PostgreSQL takes it
		"2026-04-05 02:15:00 Australia/Lord_Howe": time.Date(2026, 4, 4, 15, 45, 0, 0, time.UTC),  // after the repeated half hour
	} {
		got, err := parseTargetTime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTargetTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, why := range map[string]string{
		"2026-03-29 02:30:00 Europe/Berlin": "skip",  // the hour lost
		"2026-10-25 02:30:00 Europe/Berlin": "twice", // the hour repeated
		// Half an hour repeated on Lord Howe Island, two hours at Troll
		// (explore23c F1).
		"2026-04-05 01:45:00 Australia/Lord_Howe": "2026-04-05 01:45:00+11:00 or 2026-04-05 01:45:00+10:30",
		"2026-10-25 02:30:00 Antarctica/Troll":    "2026-10-25 02:30:00+02:00 or 2026-10-25 02:30:00+00:00",
		"2026-12-07 12:54:03 Europe/Nowhere":      "unknown time zone",
	} {
		if _, err := parseTargetTime(in); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("parseTargetTime(%q): %v; want a refusal saying %q", in, err, why)
		}
	}
}

// TestParseTargetTimePrecision: digits past the microsecond are rounded
// as PostgreSQL reads them, not cut (a commit a fraction of a microsecond
// before the target was left out with --target-inclusive=false); a time
// without seconds is refused saying so (explore23c F5).
func TestParseTargetTimePrecision(t *testing.T) {
	got, err := parseTargetTime("2026-12-08 01:22:04.7908549+05:30")
	if want := time.Date(2026, 12, 7, 19, 52, 4, 790855000, time.UTC); err != nil || !got.Equal(want) {
		t.Errorf("nanoseconds: %v, %v; want %v (rounded to the microsecond)", got, err, want)
	}
	got, err = parseTargetTime("2026-04-05 02:15:00.0000004 Australia/Lord_Howe")
	if want := time.Date(2026, 4, 4, 15, 45, 0, 0, time.UTC); err != nil || !got.Equal(want) {
		t.Errorf("nanoseconds in a named zone: %v, %v; want %v", got, err, want)
	}
	// A half rounds to the even microsecond, as PostgreSQL's rint does
	// (explore23e nit).
	for in, want := range map[string]int{"2026-12-07 19:52:04.0000005Z": 0, "2026-12-07 19:52:04.0000015Z": 2000, "2026-12-07 19:52:04.0000025Z": 2000, "2026-12-07 19:52:04.00000251Z": 3000} {
		if got, err := parseTargetTime(in); err != nil || got.Nanosecond() != want {
			t.Errorf("parseTargetTime(%q): %d ns, %v; want %d", in, got.Nanosecond(), err, want)
		}
	}
	for _, in := range []string{"2026-12-07 19:52+00", "2026-12-07T19:52Z", "2026-12-07 19:52 Europe/Berlin"} {
		if _, err := parseTargetTime(in); err == nil || !strings.Contains(err.Error(), "give the seconds too") {
			t.Errorf("parseTargetTime(%q): %v; want a refusal asking for the seconds", in, err)
		}
	}
}
