package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/server/loadgen"
)

// rawUpgrade opens a WebSocket on a bare TCP connection (no client-side
// goroutines or buffers), so memory measured in this process is the
// server's.
func rawUpgrade(addr string, d loadgen.Device) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 16)
	rand.Read(key)
	auth := base64.StdEncoding.EncodeToString([]byte(d.Account + ".1:" + d.Credential))
	fmt.Fprintf(c, "GET /v1/queue/websocket HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Basic %s\r\n\r\n",
		addr, base64.StdEncoding.EncodeToString(key), auth)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("upgrade: %d", res.StatusCode)
	}
	return c, nil
}

func serverMem() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.StackInuse
}

// BenchmarkIdleWebSocketMemory reports the server's heap + stack per
// idle device WebSocket (after the queue_empty frame).
func BenchmarkIdleWebSocketMemory(b *testing.B) {
	const n = 1000
	base := benchServer(b, openSQLite(b, b.TempDir()), nil)
	c := loadgen.NewClient(base, 16)
	devs, err := c.Register(context.Background(), "idle", n)
	if err != nil {
		b.Fatal(err)
	}
	addr := strings.TrimPrefix(base, "http://")
	for i := 0; i < b.N; i++ {
		h0, s0 := serverMem()
		g0 := runtime.NumGoroutine()
		conns := make([]net.Conn, 0, n)
		for _, d := range devs {
			conn, err := rawUpgrade(addr, d)
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, conn)
		}
		time.Sleep(500 * time.Millisecond) // let every connection reach idle
		h1, s1 := serverMem()
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/conn")
		b.ReportMetric(float64(h1+s1-h0-s0)/n/1024, "KiB/conn")
		b.ReportMetric(float64(h1-h0)/n/1024, "heap-KiB/conn")
		b.ReportMetric(float64(s1-s0)/n/1024, "stack-KiB/conn")
		for _, c := range conns {
			c.Close()
		}
		time.Sleep(200 * time.Millisecond)
	}
}
