package pgtest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy relays connections to the cluster over a unix socket of its own, and can break one
// connection at the worst moment for a writer: after the server committed a transaction and
// before the client learns it. Clients connect with host=Proxy.Dir.
type Proxy struct {
	Dir string
	// armed: the next COMMIT that the server completes loses its connection instead of its
	// reply. Drops counts the connections broken so.
	armed atomic.Bool
	drops atomic.Int64
	ln    net.Listener
	wg    sync.WaitGroup
}

// NewProxy starts a proxy in front of the cluster, stopped when the test ends.
func (c *Cluster) NewProxy(t testing.TB) *Proxy {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgproxy-")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(dir, ".s.PGSQL.5432"))
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Dir: dir, ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("unix", filepath.Join(c.Dir, ".s.PGSQL.5432"))
			if err != nil {
				client.Close()
				continue
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.relay(client, server)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
		os.RemoveAll(dir)
	})
	return p
}

// DSN is the key=value connection string of database db as role user, through the proxy.
func (p *Proxy) DSN(db, user string) string {
	return fmt.Sprintf("host=%s dbname=%s user=%s sslmode=disable", p.Dir, db, user)
}

// BreakNextCommit arms the proxy: the next transaction committed through it is committed on
// the server, and its client's connection is closed before the reply reaches it.
func (p *Proxy) BreakNextCommit() { p.armed.Store(true) }

// Drops is how many connections the proxy broke after a commit.
func (p *Proxy) Drops() int64 { return p.drops.Load() }

// relay copies messages both ways. The client's messages are read one by one (after the
// untyped startup message) to see a COMMIT go by; the server's, to see it completed.
func (p *Proxy) relay(client, server net.Conn) {
	var committing atomic.Bool
	done := make(chan struct{}, 2)
	closeBoth := func() { client.Close(); server.Close() }
	go func() {
		defer func() { done <- struct{}{} }()
		// Startup: int32 length, then the rest.
		if err := copyMessage(client, server, false, nil); err != nil {
			return
		}
		for {
			err := copyMessage(client, server, true, func(typ byte, body []byte) {
				if typ == 'Q' && bytes.EqualFold(bytes.TrimSpace(bytes.TrimRight(body, "\x00")), []byte("commit")) && p.armed.Load() {
					committing.Store(true)
				}
			})
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		var held []byte // the server's reply to a COMMIT, kept back
		for {
			typ, msg, err := readMessage(server, true)
			if err != nil {
				return
			}
			if committing.Load() {
				held = append(held, msg...)
				if typ == 'Z' { // ready for query: the commit is done on the server
					if bytes.Contains(held, []byte("COMMIT\x00")) && p.armed.CompareAndSwap(true, false) {
						p.drops.Add(1)
						closeBoth()
						return
					}
					committing.Store(false)
					if _, err := client.Write(held); err != nil {
						return
					}
					held = nil
				}
				continue
			}
			if _, err := client.Write(msg); err != nil {
				return
			}
		}
	}()
	<-done
	closeBoth()
	<-done
}

// readMessage reads one protocol message: a type byte (when typed) and an int32 length that
// counts itself. It returns the type and the whole message.
func readMessage(r io.Reader, typed bool) (byte, []byte, error) {
	n := 4
	if typed {
		n = 5
	}
	head := make([]byte, n)
	if _, err := io.ReadFull(r, head); err != nil {
		return 0, nil, err
	}
	l := binary.BigEndian.Uint32(head[n-4:])
	if l < 4 || l > 1<<30 {
		return 0, nil, fmt.Errorf("bad message length %d", l)
	}
	msg := make([]byte, n+int(l)-4)
	copy(msg, head)
	if _, err := io.ReadFull(r, msg[n:]); err != nil {
		return 0, nil, err
	}
	var typ byte
	if typed {
		typ = head[0]
	}
	return typ, msg, nil
}

// copyMessage relays one message from r to w, showing it to see first.
func copyMessage(r io.Reader, w io.Writer, typed bool, see func(typ byte, body []byte)) error {
	typ, msg, err := readMessage(r, typed)
	if err != nil {
		return err
	}
	if see != nil {
		see(typ, msg[5:])
	}
	_, err = w.Write(msg)
	return err
}
