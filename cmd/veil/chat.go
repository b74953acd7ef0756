package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/veil-e2ee/veil/client"
)

// lockedWriter serializes output from the receiving goroutine and the
// input loop.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func runChat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("chat", "[flags] USERNAME",
		"An interactive line-mode chat with USERNAME: each line you type is sent; messages\n"+
			"arrive as they come (from anyone). /safety shows the safety number, /quit or end\n"+
			"of input (Ctrl-D) leaves.", stderr)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	who := pos[0]
	c, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	out := &lockedWriter{w: stdout}

	// The conversation so far, then live messages.
	if ms, err := c.Messages(ctx, who, 0, 1<<20); err == nil {
		if len(ms) > 20 {
			ms = ms[len(ms)-20:]
		}
		for _, m := range ms {
			printEvent(out, client.Event{Kind: client.EventMessage, Message: m}, f.json)
		}
	}
	if !f.json {
		fmt.Fprintf(out, "-- chatting with %s as %s; /quit to leave, /safety for the safety number\n", who, c.Self().Username)
	}
	rctx, cancel := context.WithCancel(ctx)
	recvDone := make(chan error, 1)
	go func() {
		var last error
		for ev, err := range c.Receive(rctx, client.ReceiveOptions{}) {
			if err != nil {
				last = err
				continue
			}
			printEvent(out, ev, f.json)
		}
		recvDone <- last
	}()
	defer func() {
		cancel()
		<-recvDone
	}()

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 64<<10), client.MaxTextBytes+1)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-recvDone:
			recvDone <- err // for the deferred wait
			if err != nil {
				return explain(err)
			}
			return nil
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			line = strings.TrimSpace(line)
			switch {
			case line == "":
			case line == "/quit" || line == "/exit":
				return nil
			case line == "/safety":
				if sn, err := c.SafetyNumber(ctx, who); err != nil {
					fmt.Fprintln(out, "!", explain(err))
				} else {
					fmt.Fprintf(out, "safety number with %s: %s\n", who, sn)
				}
			case line == "/help":
				fmt.Fprintln(out, "type a line to send it; /safety shows the safety number; /quit leaves")
			default:
				m, err := c.Send(ctx, who, line)
				switch {
				case errors.Is(err, client.ErrNoSuchUser):
					return fmt.Errorf("there is no user %q", who)
				case err != nil:
					fmt.Fprintln(out, "!", explain(err))
				case m.Status != client.Sent:
					fmt.Fprintln(out, "! queued: the server cannot be reached; it goes out when it can")
				}
			}
		}
	}
}
