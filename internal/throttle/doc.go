// Package throttle limits the bytes a second a command moves (max-rate):
// one Limiter per command, shared by every stream it reads, with
// golang.org/x/time/rate's token bucket underneath.
package throttle
