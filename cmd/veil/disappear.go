package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/veil-e2ee/veil/client"
)

// veil disappear: a conversation's disappearing-messages timer.

func runDisappear(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("disappear", "[flags] USERNAME|GROUP [DURATION|off]",
		"Shows or sets how long messages in a conversation (with a user, or a group by name or id) last\n"+
			"after they are stored, on every device of everyone in it: e.g. 30s, 10m, 1h, 168h; 'off' stops it.", stderr)
	pos, err := parseArgs(fs, args, 1, 2)
	if err != nil {
		return err
	}
	c, err := f.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	conv := pos[0]
	if g, err := findGroup(ctx, c, conv); err == nil {
		conv = g
	}
	if len(pos) == 1 {
		d, err := c.Disappearing(ctx, conv)
		if err != nil {
			return explainGroup(err)
		}
		if f.json {
			printJSON(stdout, map[string]any{"conversation": pos[0], "seconds": int64(d / time.Second)})
		} else if d == 0 {
			fmt.Fprintf(stdout, "messages with %s do not disappear\n", pos[0])
		} else {
			fmt.Fprintf(stdout, "messages with %s disappear %v after they arrive\n", pos[0], d)
		}
		return nil
	}
	var d time.Duration
	if pos[1] != "off" && pos[1] != "0" {
		if d, err = time.ParseDuration(pos[1]); err != nil {
			return fmt.Errorf("%q is not a duration (say 30s, 10m, 1h or off)", pos[1])
		}
	}
	if err := c.SetDisappearing(ctx, conv, d); err != nil {
		return explainGroup(err)
	}
	if f.json {
		printJSON(stdout, map[string]any{"conversation": pos[0], "seconds": int64(d / time.Second)})
	} else if d == 0 {
		fmt.Fprintf(stdout, "disappearing messages off for %s\n", pos[0])
	} else {
		fmt.Fprintf(stdout, "messages with %s now disappear %v after they arrive, on every device\n", pos[0], d)
	}
	return nil
}

func timerText(ev client.Event) string {
	if ev.Timer == 0 {
		return "disappearing messages turned off"
	}
	return fmt.Sprintf("messages now disappear %v after they arrive", ev.Timer)
}
