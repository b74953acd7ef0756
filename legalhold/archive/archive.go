// Package archive is the compliance device's archive: what a legal
// hold's compliance device received, as JSON lines in age-encrypted
// segment files that only the organisation's key opens
// (`veil admin legal-hold run` writes them, `veil admin legal-hold
// archive` reads them). A segment is written to a temporary file,
// synced and renamed, so a crash leaves whole segments only; records
// carry the compliance device's local message id, by which a reader
// drops the repeats a crash between a segment and its cursor can leave.
package archive

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"filippo.io/age"
)

// Record is one archived message.
type Record struct {
	ID           int64  `json:"id"` // the compliance device's local message id
	Account      string `json:"account"`
	Conversation string `json:"conversation"`          // the peer's account id, or "g:" and a group id
	Group        string `json:"group,omitempty"`       // group id for a group message
	Direction    string `json:"direction"`             // "in" (to the held account) or "out" (sent by it)
	Sender       string `json:"sender"`                // account id of the sender
	SenderName   string `json:"sender_name,omitempty"` // username, when known
	PeerName     string `json:"peer_name,omitempty"`
	SenderDevice uint32 `json:"sender_device"`
	Body         string `json:"body"`
	SentAt       int64  `json:"sent_at"`     // Unix ms, the sender's clock
	ReceivedAt   int64  `json:"received_at"` // Unix ms, when the compliance device stored it
}

const (
	segmentPrefix = "segment-"
	segmentSuffix = ".age"
	cursorFile    = "cursor"
)

// Cursor returns the highest record id archived in dir (0 if none).
func Cursor(dir string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, cursorFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("archive: %s is not a cursor", filepath.Join(dir, cursorFile))
	}
	return n, nil
}

// Append writes recs as a new segment encrypted to recipients, then
// moves the cursor past them. recs must be in id order.
func Append(dir string, recs []Record, recipients ...age.Recipient) error {
	if len(recs) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var plain bytes.Buffer
	enc := json.NewEncoder(&plain)
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			return err
		}
	}
	var sealed bytes.Buffer
	w, err := age.Encrypt(&sealed, recipients...)
	if err != nil {
		return err
	}
	if _, err := w.Write(plain.Bytes()); err != nil {
		return err
	}
	clear(plain.Bytes())
	if err := w.Close(); err != nil {
		return err
	}
	name := fmt.Sprintf("%s%020d-%020d%s", segmentPrefix, recs[0].ID, recs[len(recs)-1].ID, segmentSuffix)
	if err := writeAtomic(dir, name, sealed.Bytes()); err != nil {
		return err
	}
	return writeAtomic(dir, cursorFile, []byte(strconv.FormatInt(recs[len(recs)-1].ID, 10)+"\n"))
}

func writeAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Read decrypts every segment in dir with identities and calls fn for
// each record in id order, each id once.
func Read(dir string, fn func(Record) error, identities ...age.Identity) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), segmentPrefix) && strings.HasSuffix(e.Name(), segmentSuffix) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var last int64
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		r, err := age.Decrypt(f, identities...)
		if err != nil {
			f.Close()
			return fmt.Errorf("archive: %s: %w", n, err)
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var rec Record
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				f.Close()
				return fmt.Errorf("archive: %s: %w", n, err)
			}
			if rec.ID <= last {
				continue // a repeat left by a crash before the cursor moved
			}
			last = rec.ID
			if err := fn(rec); err != nil {
				f.Close()
				return err
			}
		}
		f.Close()
		if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("archive: %s: %w", n, err)
		}
	}
	return nil
}
