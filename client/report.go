package client

import "context"

// Clients tell the server how many messages they could not decrypt, by
// cause — counts only, no content, no sender, no message ids — so an
// operator can see a broken client release or an attack on the ratchet
// (docs/OPERATIONS.md "What to watch"). The server keeps them only as
// metrics.

// noteFailure counts one undecryptable message.
func (c *Client) noteFailure(cause string) {
	c.failMu.Lock()
	defer c.failMu.Unlock()
	if c.failures == nil {
		c.failures = map[string]int{}
	}
	c.failures[cause]++
}

// reportFailures sends the counts gathered since the last report (best
// effort: on failure they are kept for the next one).
func (c *Client) reportFailures(ctx context.Context) {
	c.failMu.Lock()
	counts := c.failures
	c.failures = nil
	c.failMu.Unlock()
	if len(counts) == 0 || c.compliance { // a compliance device reports nothing (the server would refuse it)
		return
	}
	if err := c.api.do(ctx, "POST", "/v1/reports/decrypt-failures", map[string]any{"counts": counts}, nil); err != nil {
		c.failMu.Lock()
		if c.failures == nil {
			c.failures = map[string]int{}
		}
		for k, v := range counts {
			c.failures[k] += v
		}
		c.failMu.Unlock()
	}
}
