package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// sendConn is one keep-alive HTTP/1.1 connection that carries sends. The
// request is written by hand and the response read with
// http.ReadResponse, without net/http's Transport: its connection pool,
// its reader and writer goroutines and their hand-offs cost the load
// generator, which shares the CPU with the server, about as much as the
// server's own HTTP handling of the request.
type sendConn struct {
	c   net.Conn
	r   *bufio.Reader
	req []byte
	buf bytes.Buffer
}

// sendConns keeps idle send connections for reuse.
type sendConns struct {
	host string // host:port
	idle chan *sendConn
}

func newSendConns(base string, n int) *sendConns {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" {
		return nil // Send then goes through net/http
	}
	return &sendConns{host: u.Host, idle: make(chan *sendConn, n)}
}

func (p *sendConns) get(ctx context.Context) (*sendConn, error) {
	select {
	case sc := <-p.idle:
		return sc, nil
	default:
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.host)
	if err != nil {
		return nil, err
	}
	return &sendConn{c: c, r: bufio.NewReaderSize(c, 4096)}, nil
}

func (p *sendConns) put(sc *sendConn) {
	select {
	case p.idle <- sc:
	default:
		sc.c.Close()
	}
}

// do sends one PUT with a JSON body and returns the status and body (the
// body is valid until the connection's next use). On any error the
// connection is closed; keep reports whether it can be reused.
func (sc *sendConn) do(ctx context.Context, host, path, auth string, body []byte) (code int, resp []byte, keep bool, err error) {
	deadline := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	sc.c.SetDeadline(deadline)
	b := append(sc.req[:0], "PUT "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\nAuthorization: "...)
	b = append(b, auth...)
	b = append(b, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	sc.req = b
	if _, err := sc.c.Write(b); err != nil {
		return 0, nil, false, err
	}
	res, err := http.ReadResponse(sc.r, nil)
	if err != nil {
		return 0, nil, false, err
	}
	sc.buf.Reset()
	_, err = sc.buf.ReadFrom(res.Body)
	res.Body.Close()
	if err != nil {
		return 0, nil, false, fmt.Errorf("loadgen: reading response: %w", err)
	}
	return res.StatusCode, sc.buf.Bytes(), !res.Close, nil
}
