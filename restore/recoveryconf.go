package restore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Files of the data directory that recovery settings live in.
const (
	autoConfName       = "postgresql.auto.conf"
	recoverySignalName = "recovery.signal"
)

// setting is one "name = 'value'" line.
type setting struct{ name, value string }

// recoverySettings lists what restore writes, in order. restoreCommand ""
// writes no restore_command.
//
// Every setting that decides where recovery stops is written, the unused
// target kinds empty, defaults included: postgresql.auto.conf beats
// postgresql.conf, which the backup brings along with whatever it holds
// (recovery_target_* of an earlier point-in-time restore done by hand,
// which PostgreSQL ignores on a primary; recovery_min_apply_delay shared
// with a delayed standby), so a restore to latest cannot stop at an old
// time nor wait an hour per commit (explore24b F2). PostgreSQL keeps only
// the last line of a name, and refuses a second target kind as it assigns
// one: the empty kinds come before the chosen one.
func recoverySettings(restoreCommand string, t Target) []setting {
	var s []setting
	if restoreCommand != "" {
		s = append(s, setting{"restore_command", restoreCommand})
	}
	var chosen setting
	switch {
	case t.Time != nil:
		chosen = setting{"recovery_target_time", formatTargetTime(*t.Time)}
	case t.XID != "":
		chosen = setting{"recovery_target_xid", t.XID}
	case t.LSN != nil:
		chosen = setting{"recovery_target_lsn", t.LSN.String()}
	case t.Name != "":
		chosen = setting{"recovery_target_name", t.Name}
	case t.Immediate:
		chosen = setting{"recovery_target", "immediate"}
	}
	for _, kind := range targetKinds {
		if kind != chosen.name {
			s = append(s, setting{kind, ""})
		}
	}
	if chosen.name != "" {
		s = append(s, chosen)
	}
	inclusive := true // PostgreSQL's default
	if t.Inclusive != nil {
		inclusive = *t.Inclusive
	}
	s = append(s, setting{"recovery_target_inclusive", strconv.FormatBool(inclusive)})
	s = append(s, setting{"recovery_target_timeline", t.TimelineSetting()})
	action := "pause" // PostgreSQL's default
	if t.Action != "" {
		action = t.Action
	}
	s = append(s, setting{"recovery_target_action", action})
	return append(s, setting{"recovery_min_apply_delay", "0"})
}

// targetKinds are the settings that each name a recovery target.
var targetKinds = []string{"recovery_target", "recovery_target_time", "recovery_target_xid", "recovery_target_lsn", "recovery_target_name"}

// quoteConfValue quotes a value for postgresql.conf the way ALTER SYSTEM
// does: in single quotes, with ' and \ doubled (the configuration parser
// reads backslash escapes inside quotes). A line break cannot be written.
func quoteConfValue(v string) (string, error) {
	if strings.ContainsAny(v, "\x00\n\r") {
		return "", fmt.Errorf("configuration value %q contains a NUL or line break, which postgresql.conf cannot hold", v)
	}
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(v); i++ {
		if v[i] == '\'' || v[i] == '\\' {
			b.WriteByte(v[i])
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('\'')
	return b.String(), nil
}

// renderRecoveryConf returns the block appended to postgresql.auto.conf: a
// comment saying who wrote it and when, then one line per setting.
func renderRecoveryConf(restoreCommand string, t Target, archiveMode string, backupID string, now time.Time) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# recovery settings written by walvault restore of backup %s at %s\n", backupID, now.UTC().Format(time.RFC3339))
	settings := recoverySettings(restoreCommand, t)
	if archiveMode != "" {
		// Last in postgresql.auto.conf, so it beats an archive_mode set
		// anywhere before it.
		settings = append(settings, setting{"archive_mode", archiveMode})
	}
	for _, s := range settings {
		q, err := quoteConfValue(s.value)
		if err != nil {
			return "", fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Fprintf(&b, "%s = %s\n", s.name, q)
	}
	return b.String(), nil
}

// recoveryKeys are the settings restore owns: any the backed-up
// postgresql.auto.conf holds (an ALTER SYSTEM on the source) are commented
// out, so they cannot combine with ours ("multiple recovery targets
// specified") or override them.
var recoveryKeys = map[string]bool{
	"restore_command":           true,
	"recovery_target":           true,
	"recovery_target_time":      true,
	"recovery_target_xid":       true,
	"recovery_target_lsn":       true,
	"recovery_target_name":      true,
	"recovery_target_inclusive": true,
	"recovery_target_timeline":  true,
	"recovery_target_action":    true,
	"recovery_min_apply_delay":  true,
}

// disabledPrefix marks a line of postgresql.auto.conf restore commented out.
const disabledPrefix = "# disabled by walvault restore: "

// rewriteAutoConf returns old with any line setting one of recoveryKeys
// commented out, followed by block.
func rewriteAutoConf(old []byte, block string) []byte {
	out, _ := disableRecoveryKeys(old)
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\n\n")) {
		out = append(out, '\n')
	}
	return append(out, block...)
}

// disableRecoveryKeys returns conf's lines, each ending in a line break,
// with those setting one of recoveryKeys commented out, and whether there
// was one.
func disableRecoveryKeys(conf []byte) (out []byte, changed bool) {
	var b bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(conf))
	sc.Buffer(make([]byte, 64<<10), len(conf)+1)
	for sc.Scan() {
		line := sc.Text()
		if recoveryKeys[confKey(line)] {
			b.WriteString(disabledPrefix)
			changed = true
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.Bytes(), changed
}

// confKey is the lower-cased setting name a postgresql.conf line sets ("" for
// comments and blank lines).
func confKey(line string) string {
	line = strings.TrimLeft(line, " \t")
	end := strings.IndexFunc(line, func(r rune) bool {
		return !(r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	})
	if end < 0 {
		end = len(line)
	}
	if end == 0 {
		return ""
	}
	return strings.ToLower(line[:end])
}

// archiveModeAlways says whether the restored configuration sets
// archive_mode = always: postgresql.auto.conf's last such line, else
// postgresql.conf's (files they include are not read).
func archiveModeAlways(root *os.Root) bool {
	for _, name := range []string{autoConfName, mainConfName} {
		conf, err := readLimited(root, name, maxAutoConf)
		if err != nil {
			continue
		}
		value, found := "", false
		sc := bufio.NewScanner(bytes.NewReader(conf))
		sc.Buffer(make([]byte, 64<<10), len(conf)+1)
		for sc.Scan() {
			line := strings.TrimLeft(sc.Text(), " \t")
			if confKey(line) != "archive_mode" {
				continue
			}
			v := strings.TrimLeft(line[len("archive_mode"):], " \t=")
			if i := strings.IndexByte(v, '#'); i >= 0 {
				v = v[:i]
			}
			value, found = strings.ToLower(strings.Trim(strings.TrimSpace(v), "'")), true
		}
		if found {
			return value == "always"
		}
	}
	return false
}

// maxAutoConf bounds how much of postgresql.auto.conf restore reads.
const maxAutoConf = 16 << 20

// mainConfName is the server's main configuration file in the data
// directory (Debian keeps it in /etc, where restore leaves it alone).
const mainConfName = "postgresql.conf"

// disableRecoveryLines comments out the lines of postgresql.conf that set
// one of recoveryKeys: an earlier point-in-time restore done by hand may
// have left them there. postgresql.auto.conf's lines beat them when they
// are spelled alike, but PostgreSQL keeps a setting's last line by its
// exact spelling, so a "Recovery_Target_Time" would stay and, with
// restore's target, stop the server ("multiple recovery targets
// specified", explore24e F4). It changes nothing when no line does, and
// says whether it changed the file (which then differs from the backup).
func disableRecoveryLines(root *os.Root) (bool, error) {
	old, err := readLimited(root, mainConfName, maxAutoConf)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", mainConfName, err)
	}
	out, changed := disableRecoveryKeys(old)
	if !changed {
		return false, nil
	}
	mode := os.FileMode(0o600)
	if fi, err := root.Stat(mainConfName); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp := mainConfName + ".walvault-tmp"
	if err := root.WriteFile(tmp, out, mode); err != nil {
		return true, fmt.Errorf("write %s: %w", mainConfName, err)
	}
	if err := root.Rename(tmp, mainConfName); err != nil {
		return true, fmt.Errorf("write %s: %w", mainConfName, err)
	}
	return true, nil
}

// writeRecoverySettings writes recovery.signal and appends block to
// postgresql.auto.conf (through a temporary file and a rename).
func writeRecoverySettings(root *os.Root, block string) error {
	old, err := readLimited(root, autoConfName, maxAutoConf)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", autoConfName, err)
	}
	tmp := autoConfName + ".walvault-tmp"
	if err := root.WriteFile(tmp, rewriteAutoConf(old, block), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", autoConfName, err)
	}
	if err := root.Rename(tmp, autoConfName); err != nil {
		return fmt.Errorf("write %s: %w", autoConfName, err)
	}
	if err := root.WriteFile(recoverySignalName, nil, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", recoverySignalName, err)
	}
	return nil
}

// readLimited reads a small file of the root, refusing one over limit bytes.
func readLimited(root *os.Root, name string, limit int64) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return data, nil
}
