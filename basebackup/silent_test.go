package basebackup

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walvault/walvault/storage/mem"
)

// silentServer speaks PostgreSQL's protocol up to ReadyForQuery, then
// answers only the queries answer knows and leaves every other one
// unanswered: a server that accepted the connection and then hung.
type silentServer struct {
	addr   string
	answer func(sql string) []pgproto3.BackendMessage

	mu   sync.Mutex
	seen []string
}

func startSilentServer(t *testing.T, answer func(sql string) []pgproto3.BackendMessage) *silentServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentServer{addr: ln.Addr().String(), answer: answer}
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				s.serve(c)
			}()
		}
	}()
	return s
}

func (s *silentServer) serve(c net.Conn) {
	be := pgproto3.NewBackend(c, c)
	if _, err := be.ReceiveStartupMessage(); err != nil {
		return
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "15.10"})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	for {
		msg, err := be.Receive()
		if err != nil {
			return
		}
		q, ok := msg.(*pgproto3.Query)
		if !ok {
			continue
		}
		s.mu.Lock()
		s.seen = append(s.seen, q.String)
		s.mu.Unlock()
		for _, m := range s.answer(q.String) {
			be.Send(m)
		}
		if be.Flush() != nil {
			return
		}
	}
}

func (s *silentServer) queries() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.seen, "; ")
}

// TestPushBoundsEachQuery: a server that stops answering after the
// connection is made fails backup-push within its query timeout, at
// IDENTIFY_SYSTEM and at the settings the preflight reads, instead of
// hanging it.
func TestPushBoundsEachQuery(t *testing.T) {
	identify := func(sql string) []pgproto3.BackendMessage {
		if sql != "IDENTIFY_SYSTEM" {
			return nil
		}
		return []pgproto3.BackendMessage{
			&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("systemid")}, {Name: []byte("timeline")}, {Name: []byte("xlogpos")}, {Name: []byte("dbname")}}},
			&pgproto3.DataRow{Values: [][]byte{[]byte("7312345678901234567"), []byte("1"), []byte("0/3000000"), nil}},
			&pgproto3.CommandComplete{CommandTag: []byte("IDENTIFY_SYSTEM")},
			&pgproto3.ReadyForQuery{TxStatus: 'I'},
		}
	}
	for _, tc := range []struct {
		name   string
		answer func(string) []pgproto3.BackendMessage
		want   string // a query the server saw last, unanswered
	}{
		{"silent from the first query", func(string) []pgproto3.BackendMessage { return nil }, "IDENTIFY_SYSTEM"},
		{"silent after IDENTIFY_SYSTEM", identify, "current_setting('server_version_num')"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startSilentServer(t, tc.answer)
			host, port, _ := net.SplitHostPort(srv.addr)
			start := time.Now()
			_, err := Push(context.Background(), mem.New(), Options{
				ConnString:   fmt.Sprintf("host=%s port=%s user=walvault sslmode=disable", host, port),
				QueryTimeout: time.Second,
			})
			elapsed := time.Since(start)
			if err == nil {
				t.Fatal("Push against a silent server succeeded")
			}
			if elapsed > 10*time.Second {
				t.Fatalf("Push took %v against a 1s query timeout: %v", elapsed, err)
			}
			if seen := srv.queries(); !strings.Contains(seen, tc.want) {
				t.Fatalf("the server saw %q, want %q among them (err: %v)", seen, tc.want, err)
			}
			t.Logf("after %v: %v", elapsed.Round(time.Millisecond), err)
		})
	}
}
