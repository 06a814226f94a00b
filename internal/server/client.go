package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/drover-hpc/drover/scheduler"
)

// Client talks to a drover server's API.
type Client struct {
	URL   string // e.g. http://127.0.0.1:7480
	Token string
	HTTP  *http.Client
}

// ErrNotLeader: the server answered but does not lead; ask again later or another server.
var ErrNotLeader = errors.New("server is not the leader")

// Place asks the server where a vnode goes.
func (c *Client) Place(ctx context.Context, req PlaceRequest) (scheduler.Decision, error) {
	var d scheduler.Decision
	err := c.do(ctx, http.MethodPost, "/v1/place", req, &d)
	return d, err
}

// Status returns the server's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
	return s, err
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.URL, "/")+path, body)
	if err != nil {
		return fmt.Errorf("drover server %s: %w", c.URL, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("drover server %s unreachable: %w (is `drover server` running? see server.url)", c.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("drover server %s: %w", c.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e apiError
		_ = json.Unmarshal(data, &e)
		msg := e.Error
		if msg == "" {
			msg = strings.TrimSpace(string(data))
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("drover server %s: %s", c.URL, msg)
		case http.StatusServiceUnavailable:
			if strings.Contains(msg, "not the leader") {
				return fmt.Errorf("drover server %s: %w", c.URL, ErrNotLeader)
			}
		}
		return fmt.Errorf("drover server %s: %s: %s", c.URL, resp.Status, msg)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("drover server %s: bad answer: %w", c.URL, err)
	}
	return nil
}
