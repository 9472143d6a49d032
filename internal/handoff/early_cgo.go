//go:build linux && cgo

package handoff

// The hand-off before the Go runtime starts. A cgo build links through the
// C toolchain, whose start-up code (glibc's __libc_start_main) runs the
// executable's ELF constructors with argc, argv and envp before it calls
// the Go runtime's entry. The constructor below makes the same request as
// Ask and, when the helper ran the command, prints its output and exits
// with its code: the Go runtime never starts, so a handed-off call costs
// the exec, the dynamic loader and one socket round trip, not the
// runtime's start on a large binary (its type and itab tables touch pages
// all over the executable, which dominates a Go start on a virtual
// machine where page faults are dear). runc starts its container init the
// same way, for another reason.
//
// Anything short of a whole answer leaves the process to go on as without
// a helper, exactly as Ask does. walvault_early_looked tells the package's
// Go init that the constructor looked, so it does not ask a second time;
// where it is not compiled (a C library other than glibc, such as musl,
// calls constructors without arguments), the Go init asks instead. PIE and
// static glibc builds run it like the default build.
//
// The request's encoding, the kept environment and the answer's parsing
// are protocol.go's, in C; TestEarlyMatchesGo holds the two together.

/*
#define _GNU_SOURCE // struct ucred
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define WV_SOCKET_PATH "pg_wal/walvault/helper.sock"
#define WV_PROTOCOL "walvault-handoff 2"
#define WV_STOPPED "walvault: wal-helper stopped before answering; running the command in this process\n"
#define WV_SILENT "walvault: wal-helper sent nothing for 30s (stopped or stuck); removed its socket, so the next calls do not wait for it; running the command in this process\n"
#define WV_KEEPALIVE "wait\n"
#define WV_SILENCE_SECONDS 30

static const char *wv_socket_path(void) { return WV_SOCKET_PATH; }
static const char *wv_keepalive(void) { return WV_KEEPALIVE; }
static const char *wv_silent(void) { return WV_SILENT; }
static int wv_silence_seconds(void) { return WV_SILENCE_SECONDS; }
static const char *wv_protocol(void) { return WV_PROTOCOL; }

struct wv_buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void wv_put(struct wv_buf *b, const char *s, size_t n) {
	if (b->oom) {
		return;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n) {
			cap *= 2;
		}
		char *p = realloc(b->p, cap);
		if (p == NULL) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

// wv_field appends s with its terminating NUL.
static void wv_field(struct wv_buf *b, const char *s) { wv_put(b, s, strlen(s) + 1); }

static void wv_count(struct wv_buf *b, long n) {
	char digits[24];
	snprintf(digits, sizeof digits, "%ld", n);
	wv_field(b, digits);
}

static int wv_has_prefix(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

// wv_kept is Environ's filter.
static int wv_kept(const char *kv) {
	return wv_has_prefix(kv, "WALVAULT_") || wv_has_prefix(kv, "AWS_") || wv_has_prefix(kv, "HOME=") ||
	       wv_has_prefix(kv, "SSL_CERT_FILE=") || wv_has_prefix(kv, "SSL_CERT_DIR=") ||
	       wv_has_prefix(kv, "HTTP_PROXY=") || wv_has_prefix(kv, "HTTPS_PROXY=") || wv_has_prefix(kv, "NO_PROXY=") ||
	       wv_has_prefix(kv, "http_proxy=") || wv_has_prefix(kv, "https_proxy=") || wv_has_prefix(kv, "no_proxy=");
}

// wv_handles is Handles.
static int wv_handles(const char *command) { return strcmp(command, "wal-push") == 0 || strcmp(command, "wal-fetch") == 0; }

// wv_encode_request is Encode(Request{dir, argv, Environ(envp)}).
static void wv_encode_request(struct wv_buf *b, const char *dir, int argc, char **argv, char **envp) {
	wv_put(b, WV_PROTOCOL "\n", strlen(WV_PROTOCOL "\n"));
	wv_field(b, dir);
	wv_count(b, argc);
	for (int i = 0; i < argc; i++) {
		wv_field(b, argv[i]);
	}
	long kept = 0;
	for (char **e = envp; e != NULL && *e != NULL; e++) {
		kept += wv_kept(*e);
	}
	wv_count(b, kept);
	for (char **e = envp; e != NULL && *e != NULL; e++) {
		if (wv_kept(*e)) {
			wv_field(b, *e);
		}
	}
}

// wv_digits is parseDigits.
static int wv_digits(const char *s, size_t n, size_t *out) {
	if (n == 0 || n > 9) {
		return 0;
	}
	size_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return 0;
		}
		v = v * 10 + (size_t)(s[i] - '0');
	}
	*out = v;
	return 1;
}

// wv_decode_answer is DecodeAnswer: 1 when the helper ran the command
// (*code set), 0 when it declined, -1 when p is not a whole answer; the
// message starts at *msg for 0 and 1.
static int wv_decode_answer(const char *p, size_t n, int *code, size_t *msg) {
	size_t skipped = 0;
	while (n - skipped >= strlen(WV_KEEPALIVE) && memcmp(p + skipped, WV_KEEPALIVE, strlen(WV_KEEPALIVE)) == 0) {
		skipped += strlen(WV_KEEPALIVE);
	}
	p += skipped;
	n -= skipped;
	if (n == 0) {
		return -1;
	}
	const char *nl = memchr(p, '\n', n);
	if (nl == NULL) {
		return -1;
	}
	size_t line = (size_t)(nl - p), sp = line, size = 0;
	while (sp > 0 && p[sp - 1] != ' ') {
		sp--;
	}
	if (sp == 0 || !wv_digits(p + sp, line - sp, &size) || size != n - line - 1) {
		return -1;
	}
	*msg = skipped + line + 1;
	size_t kind = sp - 1;
	if (kind == 8 && memcmp(p, "fallback", 8) == 0) {
		return 0;
	}
	size_t c = 0;
	if (kind > 5 && memcmp(p, "exit ", 5) == 0 && wv_digits(p + 5, kind - 5, &c) && c <= 255) {
		*code = (int)c;
		return 1;
	}
	return -1;
}

// wv_stop_signal is a SIGTERM, SIGINT or SIGQUIT that arrived while the
// constructor waited on the helper: the call is cut off (the helper
// cancels it when the connection closes), and the Go command, told by
// earlyStopSignal, stops at once as it does when it receives one itself
// (a wal-fetch exits 200, on a standby 1), rather than the process dying
// of the signal, which PostgreSQL takes for a shutdown.
static volatile sig_atomic_t wv_stop_signal;

static void wv_on_stop(int sig) { wv_stop_signal = sig; }

static const int wv_stop_signals[] = {SIGTERM, SIGINT, SIGQUIT};
#define WV_NSTOP (sizeof wv_stop_signals / sizeof wv_stop_signals[0])

// wv_catch_stops installs wv_on_stop (without SA_RESTART, so a blocked
// read returns EINTR) and saves the dispositions wv_release_stops puts
// back.
static void wv_catch_stops(struct sigaction *saved) {
	struct sigaction sa = {.sa_handler = wv_on_stop};
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < WV_NSTOP; i++) {
		sigaction(wv_stop_signals[i], &sa, &saved[i]);
	}
}

static void wv_release_stops(const struct sigaction *saved) {
	for (size_t i = 0; i < WV_NSTOP; i++) {
		sigaction(wv_stop_signals[i], &saved[i], NULL);
	}
}

static int wv_stopped(void) { return wv_stop_signal; }

static int wv_send_all(int fd, const char *p, size_t n) {
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR && !wv_stop_signal) {
			continue;
		}
		if (w <= 0) {
			return 0;
		}
		p += w;
		n -= (size_t)w;
	}
	return 1;
}

// wv_forget_helper is forgetHelper: it removes the socket of a helper that
// fell silent, unless another has taken its place since (before: the
// socket as found before connecting).
static void wv_forget_helper(const char *path, const struct stat *before) {
	struct stat now;
	if (stat(path, &now) == 0 && now.st_dev == before->st_dev && now.st_ino == before->st_ino) {
		unlink(path);
	}
}

// wv_read_all is readAll: 1 when a read timed out (SO_RCVTIMEO), 2 when a
// stop signal arrived.
static int wv_read_all(int fd, struct wv_buf *b) {
	char chunk[4096];
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR && wv_stop_signal) {
			return 2;
		}
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return 1;
		}
		if (r <= 0) {
			return 0;
		}
		wv_put(b, chunk, (size_t)r);
	}
}

static void wv_stderr(const char *p, size_t n) {
	while (n > 0) {
		ssize_t w = write(2, p, n);
		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

// wv_note is the constructor's note (handoff.TakeNote): why it left the
// command to this process, for the command's logger.
static char *wv_note;

static void wv_set_note(const char *p, size_t n) {
	free(wv_note);
	wv_note = strndup(p, n);
}

// wv_take_note hands the note over to the caller, who frees it.
static char *wv_take_note(void) {
	char *n = wv_note;
	wv_note = NULL;
	return n;
}

#ifdef __GLIBC__
// The constructor ran: the Go init must not ask again.
static int walvault_early_looked;

__attribute__((constructor)) static void wv_early_handoff(int argc, char **argv, char **envp) {
	walvault_early_looked = 1;
	int eligible = 0;
	for (int i = 1; i < argc && !eligible; i++) {
		eligible = wv_handles(argv[i]);
	}
	if (!eligible) {
		return;
	}
	int saved_errno = errno;
	char *dir = getcwd(NULL, 0);
	struct wv_buf req = {0}, answer = {0};
	int fd = -1;
	struct sigaction saved_stops[WV_NSTOP];
	int catching = 0;
	if (dir == NULL) {
		goto done;
	}
	struct stat found;
	if (stat(WV_SOCKET_PATH, &found) != 0) {
		goto done; // no helper: go on silently, as without one
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	memcpy(addr.sun_path, WV_SOCKET_PATH, sizeof WV_SOCKET_PATH);
	// No helper (no socket, or a dead helper's): go on silently, as without one.
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
		goto done;
	}
	// From here a stop signal cuts the call off instead of killing the
	// process (see wv_stop_signal).
	wv_catch_stops(saved_stops);
	catching = 1;
	// Only a helper of this user: an answer of exit 0 is trusted.
	struct ucred cred;
	socklen_t credlen = sizeof cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) != 0 || cred.uid != getuid()) {
		goto done;
	}
	wv_encode_request(&req, dir, argc, argv, envp);
	if (req.oom || !wv_send_all(fd, req.p, req.len)) {
		goto done;
	}
	// As in Ask: the helper runs the command under its own --timeout, a
	// cut connection ends the read, and silence (not even a keepalive)
	// for WV_SILENCE_SECONDS gives the helper up.
	struct timeval tv = {.tv_sec = WV_SILENCE_SECONDS};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	int read_end = wv_read_all(fd, &answer);
	if (read_end == 2) {
		goto done;
	}
	if (read_end) {
		wv_forget_helper(WV_SOCKET_PATH, &found);
		wv_set_note(WV_SILENT, strlen(WV_SILENT));
		goto done;
	}
	int code = 0;
	size_t msg = 0;
	int kind = answer.oom ? -1 : wv_decode_answer(answer.p, answer.len, &code, &msg);
	if (kind < 0) {
		wv_set_note(WV_STOPPED, strlen(WV_STOPPED));
		goto done;
	}
	if (kind == 1) {
		wv_stderr(answer.p + msg, answer.len - msg);
		_exit(code);
	}
	wv_set_note(answer.p + msg, answer.len - msg);
done:
	if (fd >= 0) {
		close(fd);
	}
	if (catching) {
		wv_release_stops(saved_stops);
	}
	free(dir);
	free(req.p);
	free(answer.p);
	errno = saved_errno;
}

static int wv_looked(void) { return walvault_early_looked; }
#else
static int wv_looked(void) { return 0; }
#endif
static int wv_early_stop(void) { return wv_stopped(); }
*/
import "C"

import (
	"os"
	"syscall"
	"unsafe"
)

// earlyLooked says whether the constructor looked at this process's
// command line (and asked the helper, if the command is one it runs).
func earlyLooked() bool { return C.wv_looked() != 0 }

// EarlyStop is the stop signal (SIGTERM, SIGINT or SIGQUIT) that cut off
// the constructor's call to the helper, 0 when none: the command must
// stop as it would on receiving it.
func EarlyStop() syscall.Signal { return syscall.Signal(C.wv_early_stop()) }

// The C side's protocol, for TestEarlyMatchesGo.

func earlySocketPath() string { return C.GoString(C.wv_socket_path()) }

func earlyProtocol() string { return C.GoString(C.wv_protocol()) }

func earlyKeepalive() (keepalive, silent string, seconds int) {
	return C.GoString(C.wv_keepalive()), C.GoString(C.wv_silent()), int(C.wv_silence_seconds())
}

// earlyEncode is wv_encode_request: the request the constructor sends for
// that working directory, command line and (whole) environment.
func earlyEncode(dir string, args, env []string) []byte {
	// NULL-terminated arrays of C strings, as argv and envp are.
	cstrings := func(list []string) []*C.char {
		arr := unsafe.Slice((**C.char)(C.calloc(C.size_t(len(list)+1), C.size_t(unsafe.Sizeof((*C.char)(nil))))), len(list)+1)
		for i, s := range list {
			arr[i] = C.CString(s)
		}
		return arr
	}
	free := func(arr []*C.char) {
		for _, p := range arr {
			C.free(unsafe.Pointer(p))
		}
		C.free(unsafe.Pointer(&arr[0]))
	}
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))
	argv, envp := cstrings(args), cstrings(env)
	defer free(argv)
	defer free(envp)
	var b C.struct_wv_buf
	C.wv_encode_request(&b, cdir, C.int(len(args)), &argv[0], &envp[0])
	defer C.free(unsafe.Pointer(b.p))
	if b.oom != 0 {
		return nil
	}
	return C.GoBytes(unsafe.Pointer(b.p), C.int(b.len))
}

// takeEarlyNote is the constructor's note, once.
func takeEarlyNote() string {
	n := C.wv_take_note()
	if n == nil {
		return ""
	}
	defer C.free(unsafe.Pointer(n))
	return C.GoString(n)
}

// earlyForget is wv_forget_helper, given the socket as found (a
// syscall.Stat_t underneath).
func earlyForget(path string, found os.FileInfo) {
	st := found.Sys().(*syscall.Stat_t)
	var before C.struct_stat
	before.st_dev = C.dev_t(st.Dev)
	before.st_ino = C.ino_t(st.Ino)
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	C.wv_forget_helper(cpath, &before)
}

// earlyDecode is wv_decode_answer, with DecodeAnswer's results.
func earlyDecode(b []byte) (a Answer, ran, complete bool) {
	p := C.CBytes(b)
	defer C.free(p)
	var code C.int
	var msg C.size_t
	switch C.wv_decode_answer((*C.char)(p), C.size_t(len(b)), &code, &msg) {
	case 1:
		return Answer{Code: int(code), Message: string(b[msg:])}, true, true
	case 0:
		return Answer{Message: string(b[msg:])}, false, true
	}
	return Answer{}, false, false
}
