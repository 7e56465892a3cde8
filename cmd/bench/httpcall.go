package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// call makes one of the bench's HTTP requests (the WHIP/WHEP offer and
// DELETE, the egress API, /metrics, a CPU profile) and reads the answer
// whole, up to limit bytes, so the connection is released before the
// caller looks at it. A larger answer is an error rather than a silent
// cut: the bench may be pointed at any server.
func call(ctx context.Context, method, url, contentType string, body io.Reader, limit int64) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req) // its error names the method and URL
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	switch {
	case err != nil:
		return resp, b, fmt.Errorf("%s %s: reading the answer: %w", method, url, err)
	case int64(len(b)) > limit:
		return resp, b[:limit], fmt.Errorf("%s %s: the answer is over %d bytes", method, url, limit)
	}
	return resp, b, nil
}
