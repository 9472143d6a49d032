//go:build unix

package drill

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/walvault/walvault/internal/osuser"
)

// serverUser is the OS user the temporary server runs as.
type serverUser struct {
	name     string
	uid, gid int
	home     string
	// switched: walvault runs as root and the server's programs run as
	// this user (PostgreSQL refuses to run as root).
	switched bool
}

// lookupServerUser resolves who runs the server. As root, name (default
// postgres), which must not be root; as anyone else, the current user, and
// naming another is an error (only root can switch users).
func lookupServerUser(name string) (serverUser, error) {
	euid := os.Geteuid()
	if euid != 0 {
		u, err := user.Current()
		if err != nil {
			return serverUser{}, fmt.Errorf("who am I: %w", err)
		}
		if name != "" && name != u.Username {
			return serverUser{}, fmt.Errorf("only root can run the temporary server as %s; run the drill as %s (or as root)", name, name)
		}
		return serverUser{name: u.Username, uid: euid, gid: os.Getegid(), home: u.HomeDir}, nil
	}
	if name == "" {
		name = "postgres"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return serverUser{}, fmt.Errorf("the drill runs as root, and PostgreSQL refuses to run as root, so the temporary server runs as %s: %w (install PostgreSQL, which creates the postgres user, or name another with --owner)", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return serverUser{}, fmt.Errorf("user %s has a non-numeric uid/gid %q/%q", name, u.Uid, u.Gid)
	}
	if uid == 0 {
		return serverUser{}, fmt.Errorf("--owner %s is root: PostgreSQL refuses to run as root; name the user it runs as", name)
	}
	return serverUser{name: name, uid: uid, gid: gid, home: u.HomeDir, switched: true}, nil
}

// procAttr starts the server in a process group of its own (a Ctrl-C on
// the terminal reaches walvault, which stops the server in order), as the
// server user when switched, and asks the kernel to stop it should
// walvault die without cleaning up.
func (u serverUser) procAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if u.switched {
		a.Credential = &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: []uint32{}}
	}
	setParentDeathSignal(a)
	return a
}

// chown hands path to the server user (a no-op when not switched).
func (u serverUser) chown(path string) error {
	if !u.switched {
		return nil
	}
	return os.Lchown(path, u.uid, u.gid)
}

// canReach reports whether the server user may search dir and every
// directory above it.
func (u serverUser) canReach(dir string) error {
	if !u.switched {
		return nil
	}
	if err := osuser.CanSearch(dir, u.uid, u.gid, u.name); err != nil {
		return fmt.Errorf("%w, who runs the temporary server", err)
	}
	return nil
}

// Signals the server is stopped with: SIGINT asks PostgreSQL for a fast
// shutdown, SIGQUIT for an immediate one.
func fastShutdown() os.Signal      { return syscall.SIGINT }
func immediateShutdown() os.Signal { return syscall.SIGQUIT }

// killGroup kills the server's whole process group: the postmaster, its
// children, and any restore_command they run.
func killGroup(pid int) error {
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// freeSpace returns the bytes available to unprivileged users on the
// filesystem holding path.
func freeSpace(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
