// Command maxrss runs a command and reports the peak resident set size of
// that command alone, for the benchmarks in package bench.
//
//	maxrss PROGRAM ARGV0 ARGS...
//
// It runs PROGRAM (a path) with ARGV0 ARGS... as its argument vector, in
// its own working directory and environment, waits for it and writes the
// child's ru_maxrss in KiB, as a decimal line, to file descriptor 3. It
// exits with the child's exit status (128+N when a signal N ended it).
//
// Why a separate process: Linux folds the memory of the process a program
// was exec'd from into the program's ru_maxrss (at exec the old address
// space's high-water mark goes into signal->maxrss). A benchmark binary
// exec'ing walvault directly would therefore report at least its own
// resident set, tens of MiB, for every child. Started from this small
// process, a child's figure is max(its own peak, this process's RSS of
// about 1-2 MiB) instead. The benchmarks measure that floor by running
// `true` through it.
package main

import (
	"fmt"
	"os"
	"syscall"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: maxrss PROGRAM ARGV0 ARGS... (writes the child's peak RSS in KiB to fd 3)")
		os.Exit(2)
	}
	out := os.NewFile(3, "maxrss-out")
	syscall.CloseOnExec(3) // the child gets only stdin, stdout and stderr
	pid, err := syscall.ForkExec(os.Args[1], os.Args[2:], &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "maxrss: exec %s: %v\n", os.Args[1], err)
		os.Exit(127)
	}
	var ws syscall.WaitStatus
	var ru syscall.Rusage
	for {
		_, err = syscall.Wait4(pid, &ws, 0, &ru)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "maxrss: wait: %v\n", err)
		os.Exit(125)
	}
	if out != nil {
		fmt.Fprintf(out, "%d\n", ru.Maxrss)
	}
	switch {
	case ws.Exited():
		os.Exit(ws.ExitStatus())
	case ws.Signaled():
		os.Exit(128 + int(ws.Signal()))
	}
	os.Exit(125)
}
