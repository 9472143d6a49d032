package check

import (
	"fmt"
	"os"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/walvault/walvault/storage/open"
)

// commandSettings is what an archive_command says about walvault's
// settings: --repo and --config flags, and WALVAULT_REPO= or
// WALVAULT_CONFIG= assignments in front of the command.
type commandSettings struct {
	runsWalvault bool
	repo         string
	config       string
	envRepo      string
	envConfig    string
	// assigned are the names of the WALVAULT_* variables set in front of
	// the command.
	assigned []string
}

// parseArchiveCommand reads an archive_command the way sh would split it
// into words (quotes, no expansions), which is enough for the commands
// people write ("walvault wal-push %p", "WALVAULT_REPO=... walvault
// wal-push --config /etc/walvault.yaml %p && ...").
func parseArchiveCommand(cmd string) commandSettings {
	var cs commandSettings
	words := shellWords(cmd)
	sawWalvault := false
	for i := 0; i < len(words); i++ {
		w := words[i]
		if name, _, ok := strings.Cut(w, "="); ok && strings.HasPrefix(name, "WALVAULT_") && !sawWalvault {
			cs.assigned = append(cs.assigned, name)
		}
		switch {
		case strings.HasPrefix(w, "WALVAULT_REPO="):
			cs.envRepo = strings.TrimPrefix(w, "WALVAULT_REPO=")
		case strings.HasPrefix(w, "WALVAULT_CONFIG="):
			cs.envConfig = strings.TrimPrefix(w, "WALVAULT_CONFIG=")
		case strings.HasPrefix(path.Base(w), "walvault"):
			sawWalvault = true // walvault, /usr/local/bin/walvault, walvault-1.2
		case w == "wal-push" && sawWalvault:
			cs.runsWalvault = true
		default:
			if v, ok := flagValue(words, &i, "repo"); ok {
				cs.repo = v
			} else if v, ok := flagValue(words, &i, "config"); ok {
				cs.config = v
			}
		}
	}
	return cs
}

// flagValue reads flag name's value when words[*i] is the flag (--name or
// -name, the value after "=" or in the next word, which *i then moves
// to); a flag without a value is ignored.
func flagValue(words []string, i *int, name string) (string, bool) {
	w := words[*i]
	for _, flag := range []string{"--" + name, "-" + name} {
		if w == flag {
			if *i+1 < len(words) {
				*i++
				return words[*i], true
			}
			return "", false
		}
		if v, ok := strings.CutPrefix(w, flag+"="); ok {
			return v, true
		}
	}
	return "", false
}

// shellWords splits s into words like sh: blanks separate, quotes group;
// operators such as && and ; end up as words of their own or attached,
// which does not matter here.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0
			} else {
				cur.WriteByte(ch)
			}
		case ch == '\'' || ch == '"':
			quote, inWord = ch, true
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == ';':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// repoSource is the repository archive_command pushes to and where that
// was found; repo is "" when it could not be told.
type repoSource struct {
	repo, from string
	// unknown says why the repository could not be told.
	unknown string
}

// archiveRepository works out the repository archive_command uses, with
// walvault's own precedence: a --repo flag, then WALVAULT_REPO (in front
// of the command, then in the server's environment), then the config file
// (--config, WALVAULT_CONFIG).
func archiveRepository(cs commandSettings, l *local) repoSource {
	switch {
	case cs.repo != "":
		return repoSource{repo: cs.repo, from: "--repo in archive_command"}
	case cs.envRepo != "":
		return repoSource{repo: cs.envRepo, from: "WALVAULT_REPO in archive_command"}
	}
	envKnown := l.env != nil
	if envKnown && l.env["WALVAULT_REPO"] != "" {
		return repoSource{repo: l.env["WALVAULT_REPO"], from: "WALVAULT_REPO in the server's environment"}
	}
	config := cs.config
	if config == "" {
		config = cs.envConfig
	}
	if config == "" && envKnown {
		config = l.env["WALVAULT_CONFIG"]
	}
	if config != "" && l.why == "" {
		repo, err := configRepo(config, l.dataDir)
		if err != nil {
			return repoSource{unknown: fmt.Sprintf("cannot read the config file %s: %v", config, err)}
		}
		if repo != "" {
			return repoSource{repo: repo, from: "config file " + config}
		}
	}
	switch {
	case l.why != "":
		return repoSource{unknown: "the server's environment and config files are not readable from here: " + l.why}
	case !envKnown:
		return repoSource{unknown: fmt.Sprintf("cannot read the server's environment (%v): run check as root or as the server's OS user", l.envErr)}
	}
	return repoSource{unknown: "neither archive_command's words, the server's environment nor a config file names a repository (a script or a sourced file may)"}
}

// configRepo reads the repo setting of a walvault YAML config file
// (relative paths are relative to the data directory, where
// archive_command runs).
func configRepo(path, dataDir string) (string, error) {
	if !strings.HasPrefix(path, "/") {
		path = dataDir + "/" + path
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return "", fmt.Errorf("not valid YAML: %w", err)
	}
	if v, ok := raw["repo"].(string); ok {
		return v, nil
	}
	return "", nil
}

// sameRepository compares two repository URLs by what they address.
func sameRepository(a, b string) (bool, error) {
	la, err := open.Parse(a)
	if err != nil {
		return false, err
	}
	lb, err := open.Parse(b)
	if err != nil {
		return false, err
	}
	return la == lb, nil
}
