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
	fs, f := newClientFlagSet("chat", "[flags] USERNAME | --group GROUP",
		"An interactive line-mode chat with USERNAME (or a group): each line you type is sent;\n"+
			"messages arrive as they come (from anyone). /safety shows the safety number (/members\n"+
			"a group's members), /quit or end of input (Ctrl-D) leaves.", stderr)
	group := fs.String("group", "", "chat in this group (name or id) instead of with one person")
	minArgs := 1
	if hasFlag(args, "group") {
		minArgs = 0
	}
	pos, err := parseArgs(fs, args, minArgs, 1)
	if err != nil {
		return err
	}
	c, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	out := &lockedWriter{w: stdout}
	who := ""
	if len(pos) > 0 {
		who = pos[0]
	}
	gid := ""
	if *group != "" {
		if gid, err = findGroup(ctx, c, *group); err != nil {
			return err
		}
		who = "group " + *group
	}
	history := func() ([]client.Message, error) {
		if gid != "" {
			return c.GroupMessages(ctx, gid, 0, 1<<20)
		}
		return c.Messages(ctx, who, 0, 1<<20)
	}

	// Legal holds first (they stay on top for as long as they last), the
	// conversation so far, then live messages.
	conv := who
	if gid != "" {
		conv = gid
	}
	if _, err := c.RefreshHolds(ctx); err != nil {
		fmt.Fprintf(stderr, "note: could not check for legal holds: %v\n", err)
	}
	if err := printHolds(ctx, c, conv, out, f.json); err != nil {
		return err
	}
	if ms, err := history(); err == nil {
		if len(ms) > 20 {
			ms = ms[len(ms)-20:]
		}
		for _, m := range ms {
			printEvent(out, client.Event{Kind: client.EventMessage, Message: m}, f.json)
		}
	}
	if !f.json {
		fmt.Fprintf(out, "-- chatting with %s as %s; /quit to leave, /safety for the safety number, /members for a group's\n", who, c.Self().Username)
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
			case line == "/members" && gid != "":
				if g, err := c.Group(ctx, gid); err != nil {
					fmt.Fprintln(out, "!", explainGroup(err))
				} else {
					showGroup(out, g, false)
				}
			case line == "/safety" && gid != "":
				fmt.Fprintln(out, "! compare safety numbers with each member: veil verify USERNAME")
			case line == "/safety":
				if sn, err := c.SafetyNumber(ctx, who); err != nil {
					fmt.Fprintln(out, "!", explain(err))
				} else {
					fmt.Fprintf(out, "safety number with %s: %s\n", who, sn)
				}
			case line == "/help":
				fmt.Fprintln(out, "type a line to send it; /safety shows the safety number; /quit leaves")
			default:
				var m client.Message
				var err error
				if gid != "" {
					m, err = c.SendGroup(ctx, gid, line)
				} else {
					m, err = c.Send(ctx, who, line)
				}
				if gid != "" && err != nil {
					fmt.Fprintln(out, "!", explainGroup(err))
					continue
				}
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
