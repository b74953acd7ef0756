package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// The user's side of the server's accountability: the security events it
// recorded about this account, everything it holds about it, and erasing
// it. docs/COMPLIANCE.md.

// AuditEvent is one security event the server recorded about this account
// (account created, device linked or removed, recovery, rate limits…).
type AuditEvent struct {
	Seq     uint64
	Time    time.Time
	Type    string
	Device  uint32            // 0: not about one device
	Details map[string]string // short, non-identifying values
}

// AuditLog returns the server's audit events about this account, oldest
// first.
func (c *Client) AuditLog(ctx context.Context) ([]AuditEvent, error) {
	var out []AuditEvent
	var after uint64
	for {
		var page struct {
			Entries []struct {
				Seq     uint64          `json:"seq"`
				Time    string          `json:"time"`
				Type    string          `json:"type"`
				Device  uint32          `json:"device"`
				Details json.RawMessage `json:"details"`
			} `json:"entries"`
		}
		if err := c.api.do(ctx, "GET", fmt.Sprintf("/v1/accounts/me/audit?after=%d", after), nil, &page); err != nil {
			return nil, err
		}
		if len(page.Entries) == 0 {
			return out, nil
		}
		for _, e := range page.Entries {
			ev := AuditEvent{Seq: e.Seq, Type: e.Type, Device: e.Device}
			ev.Time, _ = time.Parse(time.RFC3339, e.Time)
			if len(e.Details) > 0 {
				_ = json.Unmarshal(e.Details, &ev.Details)
			}
			out = append(out, ev)
			after = e.Seq
		}
	}
}

// ExportAccountData returns, as the server's JSON, everything the server
// holds about this account (the right of access).
func (c *Client) ExportAccountData(ctx context.Context) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.api.do(ctx, "GET", "/v1/accounts/me/export", nil, &raw)
	return raw, err
}

// DeleteAccount erases this account on the server — every device, key,
// queued message and archive — and returns the server's signed erasure
// receipt (JSON). This device's local store is left to the caller
// (delete the profile directory). It cannot be undone.
func (c *Client) DeleteAccount(ctx context.Context) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.api.do(ctx, "DELETE", "/v1/accounts/me", nil, &raw)
	return raw, err
}
