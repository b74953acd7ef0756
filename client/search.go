package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
)

// Search finds messages on this device: the server only ever holds
// ciphertext, so search happens here, over an index inside the encrypted
// device store (docs/CLIENT.md "Search").

// SearchOptions narrow a search.
type SearchOptions struct {
	// In is a conversation: a contact's username or a group (its id).
	In string
	// From is the sender's username ("" anyone; your own username for
	// what you sent).
	From string
	// Since (inclusive) and Until (exclusive) bound the sent time.
	Since, Until time.Time
	// Limit (default 20, at most 1,000) and Offset page the results.
	Limit, Offset int
}

// SearchResult is one message found.
type SearchResult struct {
	Message Message
	// Snippet is an extract around the matches; matched words are
	// between HighlightStart and HighlightEnd.
	Snippet string
	Rank    float64 // relevance: higher is better; results come best first
}

// Highlight markers in SearchResult.Snippet.
const (
	HighlightStart = devicestore.HighlightStart
	HighlightEnd   = devicestore.HighlightEnd
)

// ErrInvalidQuery: the search text has a syntax error (unbalanced quotes
// or parentheses, only negated words, …) or no searchable word.
var ErrInvalidQuery = devicestore.ErrInvalidQuery

// Search finds messages matching query — words, "phrases", prefix*,
// AND / OR / NOT (or -word), parentheses; case and accents do not matter,
// and words in scripts without spaces (Chinese, Japanese, Korean, Thai)
// are found inside longer runs — best first, with highlighted snippets.
func (c *Client) Search(ctx context.Context, query string, opts SearchOptions) ([]SearchResult, error) {
	if _, err := c.ExpireMessages(ctx); err != nil {
		return nil, err
	}
	q := devicestore.SearchQuery{Text: query, Since: opts.Since, Until: opts.Until, Limit: opts.Limit, Offset: opts.Offset}
	if opts.In != "" {
		key, err := c.conversationKey(ctx, opts.In)
		if err != nil {
			return nil, err
		}
		conv, err := c.store.ConversationByPeer(ctx, key)
		if errors.Is(err, devicestore.ErrNotFound) {
			return nil, nil // no conversation, nothing in it
		}
		if err != nil {
			return nil, err
		}
		q.Conversation = conv
	}
	if opts.From != "" {
		if opts.From == c.self.Username {
			q.Sender = c.self.AccountID
		} else {
			ct, err := c.store.ContactByUsername(ctx, opts.From)
			if err != nil {
				return nil, notContact(err, opts.From)
			}
			q.Sender = ct.AccountID
		}
	}
	hits, err := c.store.Search(ctx, q)
	if err != nil {
		if errors.Is(err, devicestore.ErrInvalidQuery) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
		}
		return nil, err
	}
	out := make([]SearchResult, 0, len(hits))
	for _, h := range hits {
		m, err := c.storedMessage(ctx, h.Message)
		if err != nil {
			return nil, err
		}
		out = append(out, SearchResult{Message: m, Snippet: h.Snippet, Rank: h.Rank})
	}
	return out, nil
}

// Reindex rebuilds the search index from the stored messages (after an
// upgrade, or to repair it); progress, if set, hears how far it got.
func (c *Client) Reindex(ctx context.Context, progress func(done, total int64)) error {
	return c.store.Reindex(ctx, progress)
}

// PlainSnippet replaces the highlight markers of a snippet with open and
// close (e.g. "[" and "]", or terminal bold on and off).
func PlainSnippet(s, open, close string) string {
	return strings.NewReplacer(HighlightStart, open, HighlightEnd, close).Replace(s)
}
