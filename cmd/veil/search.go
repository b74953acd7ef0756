package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/veil-e2ee/veil/client"
)

// veil search: full-text search on this device (the server never could).

func runSearch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newClientFlagSet("search", `[flags] "QUERY" | --reindex`,
		"Searches your messages on this device: words, \"phrases\", prefix*, AND / OR / NOT (or -word),\n"+
			"parentheses. Case and accents do not matter; Chinese, Japanese, Korean and Thai words are\n"+
			"found inside longer runs of text. --reindex rebuilds the index (after an upgrade, or to repair it).", stderr)
	var (
		in, from, since, until string
		limit, page            int
		reindex                bool
	)
	fs.StringVar(&in, "in", "", "only the conversation with this username, or this group (name or id)")
	fs.StringVar(&from, "from", "", "only messages from this username (yours: your own)")
	fs.StringVar(&since, "since", "", "only messages sent at or after: YYYY-MM-DD, RFC 3339, or a duration ago (e.g. 72h)")
	fs.StringVar(&until, "until", "", "only messages sent before (same forms)")
	fs.IntVar(&limit, "limit", 20, "results per page (1–1000)")
	fs.IntVar(&page, "page", 1, "which page of results")
	fs.BoolVar(&reindex, "reindex", false, "rebuild the search index, with a progress bar")
	minArgs := 1
	if hasFlag(args, "reindex") {
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
	if reindex {
		start := time.Now()
		err := c.Reindex(ctx, func(done, total int64) {
			if f.json {
				return
			}
			const width = 30
			n := int64(width)
			if total > 0 {
				n = width * done / total
			}
			fmt.Fprintf(stderr, "\rreindexing [%s%s] %d/%d messages", strings.Repeat("#", int(n)), strings.Repeat(".", width-int(n)), done, total)
		})
		if err != nil {
			return err
		}
		if f.json {
			printJSON(stdout, map[string]any{"reindexed": true, "seconds": time.Since(start).Seconds()})
		} else {
			fmt.Fprintf(stderr, "\nsearch index rebuilt in %.1f s\n", time.Since(start).Seconds())
		}
		if len(pos) == 0 {
			return nil
		}
	}
	if limit < 1 || limit > 1000 || page < 1 {
		return errors.New("--limit is 1 to 1000 and --page at least 1")
	}
	opts := client.SearchOptions{From: from, Limit: limit, Offset: (page - 1) * limit}
	if in != "" {
		opts.In = in
		if g, err := findGroup(ctx, c, in); err == nil {
			opts.In = g
		}
	}
	if opts.Since, err = parseWhen(since, time.Now()); err != nil {
		return fmt.Errorf("--since: %v", err)
	}
	if opts.Until, err = parseWhen(until, time.Now()); err != nil {
		return fmt.Errorf("--until: %v", err)
	}
	rs, err := c.Search(ctx, pos[0], opts)
	switch {
	case errors.Is(err, client.ErrInvalidQuery):
		return fmt.Errorf("that search does not parse: %v", strings.TrimPrefix(err.Error(), "client: invalid argument: "))
	case errors.Is(err, client.ErrNoSuchUser):
		return fmt.Errorf("%v", err)
	case err != nil:
		return explainGroup(err)
	}
	for _, r := range rs {
		m := r.Message
		if f.json {
			printJSON(stdout, map[string]any{"id": m.ID, "conversation": conversationName(m), "group": m.Group, "from": fromName(m),
				"outgoing": m.Outgoing, "body": m.Body, "snippet": client.PlainSnippet(r.Snippet, "[", "]"), "rank": r.Rank,
				"sent_at": m.SentAt.UTC().Format(time.RFC3339Nano)})
			continue
		}
		fmt.Fprintf(stdout, "#%d %s %s: %s\n", m.ID, m.SentAt.Local().Format("2006-01-02 15:04"), fromName(m), client.PlainSnippet(r.Snippet, "[", "]"))
	}
	if len(rs) == 0 && !f.json {
		fmt.Fprintln(stdout, "no messages found")
	}
	return nil
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "-"+name || a == "--"+name || strings.HasPrefix(a, "--"+name+"=") || strings.HasPrefix(a, "-"+name+"=") {
			return true
		}
	}
	return false
}

// parseWhen reads a date (YYYY-MM-DD, local midnight), an RFC 3339 time,
// or a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, time.Local); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date (YYYY-MM-DD), a time (RFC 3339) or a duration ago (72h)", s)
}

func fromName(m client.Message) string {
	if m.Outgoing {
		return "you"
	}
	if m.Peer != "" {
		return m.Peer
	}
	return m.PeerAccount
}

func conversationName(m client.Message) string {
	if m.Group != "" {
		return m.Group
	}
	if m.Peer != "" {
		return m.Peer
	}
	return m.PeerAccount
}
