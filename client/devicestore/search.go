package devicestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/ext/fts5"

	"github.com/veil-e2ee/veil/client/devicestore/internal/tokenize"
)

// Full-text search
//
// Messages are indexed by an FTS5 table inside the encrypted database
// (migration 0006), kept in step by triggers in the transaction that
// stores, edits or deletes a message. Terms come from the tokenizer in
// internal/tokenize, which documents the scripts it handles: words of
// spaced scripts are case-folded and stripped of diacritics; Chinese,
// Japanese, Korean, Thai, Lao, Khmer and Myanmar text is indexed by
// character, and a word of those scripts is searched as the phrase of
// its characters.

// Highlight markers around matched terms in SearchHit.Snippet: the
// control characters STX and ETX, which message text never needs, so a
// UI can split on them without escaping.
const (
	HighlightStart = "\x02"
	HighlightEnd   = "\x03"
	// SnippetEllipsis marks text left out at either end of a snippet.
	SnippetEllipsis = "…"
)

// ErrInvalidQuery: a search query's syntax is wrong (unbalanced
// parentheses or quotes, an operator without an operand, only negated
// terms) or it has no searchable word. The message says what, quoting
// no query text.
var ErrInvalidQuery = errors.New("devicestore: invalid search query")

// Query limits: longer or deeper queries are ErrInvalidQuery.
const (
	MaxQueryBytes  = tokenize.MaxQueryBytes
	MaxQueryTerms  = tokenize.MaxQueryTerms
	maxSearchLimit = 1000
	// DefaultSearchLimit is the page size when SearchQuery.Limit is 0.
	DefaultSearchLimit = 20
)

// SearchQuery is a full-text search over messages.
//
// Text syntax (operators in capitals, as typed):
//
//	word          a word; several words must all occur (AND)
//	"a phrase"    the words in this order, next to each other
//	pre*          words starting with pre (also "a phra"*)
//	a AND b       both (the same as a b)
//	a OR b        either; AND binds tighter than OR
//	a NOT b, -b   a without b (a query must have a word not negated)
//	( … )         grouping
//
// Words are matched case- and accent-insensitively. A word in a script
// without spaces (東京, 서울, กรุงเทพ) matches wherever its characters
// occur in that order, also inside a longer run (東京 in 東京都).
// Lowercase and, or, not are plain words.
//
// Results: the newest RankWindow matches (after the filters) come first,
// ordered by relevance (BM25: rarer words, more occurrences, shorter
// messages rank higher); older matches follow, newest first. Most
// searches have fewer matches than that and are ranked entirely; a
// common word is ranked among its recent uses, which bounds its cost on
// a large store. Offset and Limit page through that one order.
type SearchQuery struct {
	Text         string
	Conversation int64  // 0: all conversations
	Sender       string // account id; "": anyone
	// Since (inclusive) and Until (exclusive) bound the messages' SentAt;
	// the zero time leaves that side open.
	Since, Until  time.Time
	Limit, Offset int // Limit 0 is DefaultSearchLimit; at most 1000
}

// SearchHit is one message found.
type SearchHit struct {
	Message Message
	// Snippet is a short extract of the body around the matches, matched
	// terms between HighlightStart and HighlightEnd, cut ends marked
	// with SnippetEllipsis.
	Snippet string
	// Rank is the relevance (the negated BM25 score): higher is better;
	// the ranked hits come best first (see SearchQuery for the order).
	Rank float64
}

// Search finds messages matching q, best first. Deleted messages (their
// body is emptied) never match.
func (r reader) Search(ctx context.Context, q SearchQuery) ([]SearchHit, error) {
	expr, err := parseSearchQuery(q.Text)
	if err != nil {
		return nil, err
	}
	limit := q.Limit
	switch {
	case limit < 0 || q.Offset < 0:
		return nil, fmt.Errorf("%w: negative limit or offset", ErrInvalidQuery)
	case limit == 0:
		limit = DefaultSearchLimit
	case limit > maxSearchLimit:
		limit = maxSearchLimit
	}
	since, until := int64(math.MinInt64), int64(math.MaxInt64)
	if !q.Since.IsZero() {
		since = ms(q.Since)
	}
	if !q.Until.IsZero() {
		until = ms(q.Until)
	}
	// User terms match the body only; a conversation is a term of the
	// conv column, intersected inside the index.
	expr = "body : (" + expr + ")"
	if q.Conversation != 0 {
		expr += fmt.Sprintf(` AND conv : "c%d"`, q.Conversation)
	}
	args := []any{expr, q.Conversation, q.Sender, since, until}
	joined := q.Sender != "" || !q.Since.IsZero() || !q.Until.IsZero() // filters on the messages row

	// The rank window: the rowid of the RankWindow-th newest match (after
	// the filters); matches from there on are ranked by BM25. Scoring is
	// the expensive part of a search (FTS5 reads each match's positions
	// and length), so bounding it bounds a common word's cost.
	lo := int64(math.MinInt64)
	windowQuery := `SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1 ORDER BY rowid DESC LIMIT 1 OFFSET ?6`
	if joined {
		windowQuery = `SELECT messages_fts.rowid FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
			WHERE messages_fts MATCH ?1 AND ` + searchFilters + ` ORDER BY messages_fts.rowid DESC LIMIT 1 OFFSET ?6`
	}
	err = r.q.QueryRowContext(ctx, windowQuery, append(args, RankWindow-1)...).Scan(&lo)
	windowed := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, dbErr("searching", err)
	}

	var hits []SearchHit
	if q.Offset < RankWindow || !windowed {
		n := limit
		if windowed {
			n = min(limit, RankWindow-q.Offset)
		}
		hits, err = r.searchRows(ctx, `AND messages_fts.rowid >= ?6 ORDER BY rank LIMIT ?7 OFFSET ?8`, append(args, lo, n, q.Offset))
		if err != nil {
			return nil, err
		}
	}
	if windowed && q.Offset+limit > RankWindow {
		off := max(q.Offset-RankWindow, 0)
		older, err := r.searchRows(ctx, `AND messages_fts.rowid < ?6 ORDER BY messages_fts.rowid DESC LIMIT ?7 OFFSET ?8`,
			append(args, lo, limit-len(hits), off))
		if err != nil {
			return nil, err
		}
		hits = append(hits, older...)
	}
	return hits, nil
}

// RankWindow is how many of the newest matches Search ranks by BM25; see
// SearchQuery.
const RankWindow = 500

// searchFilters are SearchQuery's filters on messages m, parameters 2-5.
const searchFilters = `(?2 = 0 OR m.conversation_id = ?2) AND (?3 = '' OR m.sender = ?3) AND m.sent_at >= ?4 AND m.sent_at < ?5`

// searchRows runs the search query with tail (a rowid bound, order and
// paging) appended.
func (r reader) searchRows(ctx context.Context, tail string, args []any) ([]SearchHit, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT `+prefixedMessageCols+`,
			snippet(messages_fts, 0, '`+HighlightStart+`', '`+HighlightEnd+`', '`+SnippetEllipsis+`', 16), rank
		FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
		WHERE messages_fts MATCH ?1 AND `+searchFilters+` `+tail, args...)
	if err != nil {
		return nil, dbErr("searching", err)
	}
	defer rows.Close()
	var hits []SearchHit
	for rows.Next() {
		var (
			h       SearchHit
			a, b    int64
			snippet []byte
		)
		m := &h.Message
		if err := rows.Scan(&m.ID, &m.ConversationID, &m.Sender, &m.SenderDevice, &m.Outgoing, &m.MessageID, &m.Body, &a, &b, &m.Status,
			&m.Edited, &m.Deleted, &snippet, &h.Rank); err != nil {
			return nil, dbErr("searching", err)
		}
		m.SentAt, m.ReceivedAt = fromMS(a), fromMS(b)
		h.Snippet = string(snippet)
		h.Rank = -h.Rank
		hits = append(hits, h)
	}
	return hits, dbErr("searching", rows.Err())
}

// parseSearchQuery turns the user's query text into a MATCH expression
// (see tokenize.ParseQuery); its errors are ErrInvalidQuery.
func parseSearchQuery(text string) (string, error) {
	expr, err := tokenize.ParseQuery(text)
	if qe := (*tokenize.QueryError)(nil); errors.As(err, &qe) {
		return "", fmt.Errorf("%w: %s", ErrInvalidQuery, qe.Reason)
	} else if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidQuery, err)
	}
	return expr, nil
}

var prefixedMessageCols = "m." + strings.ReplaceAll(messageCols, ", ", ", m.")

// Reindex rebuilds the search index from the messages, in one
// transaction (a crash leaves the old index). progress, if not nil, is
// called after each batch with the messages indexed so far and the
// total. Searching works throughout (on the old index until the commit).
func (s *Store) Reindex(ctx context.Context, progress func(done, total int64)) error {
	return s.Update(ctx, func(tx *Tx) error {
		var total int64
		if err := tx.tx.QueryRowContext(ctx, `SELECT count(*) FROM messages`).Scan(&total); err != nil {
			return dbErr("reindexing", err)
		}
		if _, err := tx.tx.ExecContext(ctx, `INSERT INTO messages_fts (messages_fts) VALUES ('delete-all')`); err != nil {
			return dbErr("reindexing", err)
		}
		if _, err := tx.tx.ExecContext(ctx, `DELETE FROM search_pending`); err != nil {
			return dbErr("reindexing", err)
		}
		const batch = 20000
		var done, last int64
		for {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("devicestore: reindexing: %w", err)
			}
			var n, maxID int64
			err := tx.tx.QueryRowContext(ctx, `SELECT count(*), coalesce(max(id), 0) FROM (SELECT id FROM messages WHERE id > ? ORDER BY id LIMIT ?)`, last, batch).Scan(&n, &maxID)
			if err != nil {
				return dbErr("reindexing", err)
			}
			if n == 0 {
				break
			}
			if _, err := tx.tx.ExecContext(ctx, `INSERT INTO messages_fts (rowid, body, conv) SELECT id, body, 'c' || conversation_id FROM messages WHERE id > ? AND id <= ?`, last, maxID); err != nil {
				return dbErr("reindexing", err)
			}
			done += n
			last = maxID
			if progress != nil {
				progress(done, max(total, done))
			}
		}
		if _, err := tx.tx.ExecContext(ctx, `INSERT INTO messages_fts (messages_fts) VALUES ('optimize')`); err != nil {
			return dbErr("reindexing", err)
		}
		return nil
	})
}

// indexPending indexes the messages queued by migration 0006's insert
// trigger; Update calls it just before committing, so new messages are
// searchable in the transaction's commit. It runs on the sql.Tx, not
// through the statement cache, which holds the caller's statements.
func indexPending(ctx context.Context, q querier) error {
	res, err := q.ExecContext(ctx, `INSERT INTO messages_fts (rowid, body, conv) SELECT m.id, m.body, 'c' || m.conversation_id FROM search_pending p JOIN messages m ON m.id = p.id`)
	if err != nil {
		return dbErr("indexing messages", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return nil
	}
	_, err = q.ExecContext(ctx, `DELETE FROM search_pending`)
	return dbErr("indexing messages", err)
}

// searchCacheKiB is each connection's page cache. Ranking reads every
// ranked match's length from the index's docsize table, a random read
// per match: with SQLite's default 2 MiB cache most of them miss, and a
// miss is a read and an Adiantum decryption of a 4 KiB page. The cache
// fills only as pages are used.
var searchCacheKiB = 16 << 10

// initSearchConn prepares a connection for search (the store's initConn
// calls it on every connection, readers included: a MATCH tokenizes its
// query with the same tokenizer): FTS5 with the search tokenizer, and a
// larger page cache.
func initSearchConn(c *sqlite3.Conn) error {
	if err := fts5.RegisterCustom(c, registerSearch); err != nil {
		return err
	}
	return c.Exec(fmt.Sprintf(`PRAGMA cache_size = -%d`, searchCacheKiB))
}

// registerSearch registers the search tokenizer.
func registerSearch(api *fts5.API) error {
	return api.CreateTokenizer("veil", func([]string) (fts5.Tokenizer, error) { return ftsTokenizer{}, nil })
}

type ftsTokenizer struct{}

func (ftsTokenizer) Tokenize(_ fts5.TokenizeFlag, text, _ string, token fts5.TokenCallback) error {
	return tokenize.Tokenize(text, func(term string, start, end int) error {
		if len(term) == end-start && term == text[start:end] {
			term = "" // the bytes are the input's: let FTS5 read them there
		}
		return token(0, term, start, end)
	})
}
