package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

// ErrExport is an export file that cannot be read back.
var ErrExport = errors.New("audit: malformed export")

// Line is one JSON line of an export: an entry, or (Type "checkpoint") a
// signed checkpoint, written after the entry it covers.
type Line struct {
	Type      string          `json:"type"`
	Seq       uint64          `json:"seq"`
	Time      string          `json:"time"`
	Account   string          `json:"account,omitempty"`
	Device    uint32          `json:"device,omitempty"`
	Details   json.RawMessage `json:"details,omitempty"`
	PrevHash  string          `json:"prev_hash,omitempty"`
	Hash      string          `json:"hash"`
	Signature string          `json:"signature,omitempty"`
}

// EntryLine is e as an export line.
func EntryLine(e *store.AuditEntry) Line {
	l := Line{Type: e.Type, Seq: e.Seq, Time: e.Time.UTC().Format(time.RFC3339), Device: e.Device,
		PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash)}
	if e.Account != nil {
		l.Account = hex.EncodeToString(e.Account)
	}
	if json.Valid(e.Details) {
		l.Details = e.Details
	} else {
		l.Details, _ = json.Marshal(string(e.Details)) // kept visible; it will not verify
	}
	return l
}

func checkpointLine(c *store.AuditCheckpoint) Line {
	return Line{Type: CheckpointLine, Seq: c.Seq, Time: c.Time.UTC().Format(time.RFC3339),
		Hash: hex.EncodeToString(c.Hash), Signature: hex.EncodeToString(c.Signature)}
}

// Export writes the whole log as JSON lines in seq order, each signed
// checkpoint after the entry it covers (checkpoints past the last entry,
// if any, at the end). It returns the number of entries written.
func Export(ctx context.Context, src Source, w io.Writer) (uint64, error) {
	var cps []store.AuditCheckpoint
	var after uint64
	for {
		page, err := src.AuditCheckpoints(ctx, after, store.MaxAuditPage)
		if err != nil {
			return 0, fmt.Errorf("audit: read checkpoints: %w", err)
		}
		cps = append(cps, page...)
		if len(page) < store.MaxAuditPage {
			break
		}
		after = page[len(page)-1].Seq
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	var n, last uint64
	for {
		page, err := src.ListAudit(ctx, store.AuditQuery{After: last, Limit: store.MaxAuditPage})
		if err != nil {
			return n, fmt.Errorf("audit: read entries: %w", err)
		}
		for i := range page {
			if err := enc.Encode(EntryLine(&page[i])); err != nil {
				return n, err
			}
			n++
			last = page[i].Seq
			for len(cps) > 0 && cps[0].Seq <= last {
				if err := enc.Encode(checkpointLine(&cps[0])); err != nil {
					return n, err
				}
				cps = cps[1:]
			}
		}
		if len(page) < store.MaxAuditPage {
			break
		}
	}
	for i := range cps {
		if err := enc.Encode(checkpointLine(&cps[i])); err != nil {
			return n, err
		}
	}
	return n, bw.Flush()
}

// maxLine bounds one export line.
const maxLine = 64 << 10

// ReadExport parses an export back into a [Memory] log that Verify can
// check offline (with only the public key).
func ReadExport(r io.Reader) (*Memory, error) {
	m := &Memory{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var l Line
		if err := dec.Decode(&l); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrExport, n, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("%w: line %d: trailing data", ErrExport, n)
		}
		t, err := time.Parse(time.RFC3339, l.Time)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: time: %v", ErrExport, n, err)
		}
		hash, err := hex.DecodeString(l.Hash)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: hash: %v", ErrExport, n, err)
		}
		if l.Type == CheckpointLine {
			sig, err := hex.DecodeString(l.Signature)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: signature: %v", ErrExport, n, err)
			}
			m.Checkpoints = append(m.Checkpoints, store.AuditCheckpoint{Seq: l.Seq, Hash: hash, Signature: sig, Time: t})
			continue
		}
		e := store.AuditEntry{Seq: l.Seq, Time: t, Type: l.Type, Device: l.Device, Details: []byte(l.Details), Hash: hash}
		if e.PrevHash, err = hex.DecodeString(l.PrevHash); err != nil {
			return nil, fmt.Errorf("%w: line %d: prev_hash: %v", ErrExport, n, err)
		}
		if l.Account != "" {
			if e.Account, err = hex.DecodeString(l.Account); err != nil {
				return nil, fmt.Errorf("%w: line %d: account: %v", ErrExport, n, err)
			}
		}
		m.Entries = append(m.Entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrExport, err)
	}
	return m, nil
}

// Memory is an audit log held in memory (an export read back). Entries
// keep the order they were read in, so Verify sees a reordering.
type Memory struct {
	Entries     []store.AuditEntry
	Checkpoints []store.AuditCheckpoint
}

// AuditHead is the last entry.
func (m *Memory) AuditHead(context.Context) (uint64, []byte, error) {
	if len(m.Entries) == 0 {
		return 0, Genesis, nil
	}
	e := m.Entries[len(m.Entries)-1]
	return e.Seq, e.Hash, nil
}

// ListAudit returns the entries from the first with seq greater than
// q.After, in file order (q.Since and q.Account filter).
func (m *Memory) ListAudit(_ context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	limit := q.Limit
	if limit <= 0 || limit > store.MaxAuditPage {
		limit = store.MaxAuditPage
	}
	start := len(m.Entries)
	for i, e := range m.Entries {
		if e.Seq > q.After {
			start = i
			break
		}
	}
	var out []store.AuditEntry
	for _, e := range m.Entries[start:] {
		if len(out) == limit {
			break
		}
		if (!q.Since.IsZero() && e.Time.Before(q.Since)) || (q.Account != nil && !bytes.Equal(q.Account, e.Account)) {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// AuditCheckpoints returns the checkpoints with seq greater than after,
// in seq order.
func (m *Memory) AuditCheckpoints(_ context.Context, after uint64, limit int) ([]store.AuditCheckpoint, error) {
	if limit <= 0 || limit > store.MaxAuditPage {
		limit = store.MaxAuditPage
	}
	cs := slices.Clone(m.Checkpoints)
	slices.SortStableFunc(cs, func(a, b store.AuditCheckpoint) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	var out []store.AuditCheckpoint
	for _, c := range cs {
		if c.Seq > after && len(out) < limit {
			if len(out) > 0 && out[len(out)-1].Seq == c.Seq {
				continue
			}
			out = append(out, c)
		}
	}
	return out, nil
}
