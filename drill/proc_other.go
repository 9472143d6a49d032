//go:build !unix

package drill

import (
	"errors"
	"os"
	"syscall"
	"time"
)

var errNotUnix = errors.New("the restore drill runs PostgreSQL, and needs a Unix system")

type serverUser struct {
	name     string
	uid, gid int
	home     string
	switched bool
}

func lookupServerUser(string) (serverUser, error) { return serverUser{}, errNotUnix }
func (serverUser) procAttr() *syscall.SysProcAttr { return nil }
func (serverUser) chown(string) error             { return errNotUnix }
func (serverUser) canReach(string) error          { return nil }
func killGroup(int) error                         { return errNotUnix }
func freeSpace(string) (uint64, error)            { return 0, errNotUnix }

func fastShutdown() os.Signal      { return os.Interrupt }
func immediateShutdown() os.Signal { return os.Kill }

func killStragglers(string, time.Duration) []int { return nil }
