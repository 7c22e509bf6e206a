// Command drbook-plugin-http-wait is a drbook step plugin providing
// http.wait: poll an HTTP(S) endpoint from the runner until it answers with
// the expected status (and body text), e.g. an agent's /healthz after a
// restore. For HTTPS to a drbook agent, ca_file names the cluster CA.
//
// It is an example of the plugin SDK (steps/plugin/sdk); drbook starts it,
// it is never run by hand.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/drbook/drbook/internal/capread"
	"github.com/drbook/drbook/steps/plugin/sdk"
)

// version is this plugin's version.
const version = "1.0.0"

func main() {
	sdk.Serve(sdk.Info{Name: "http-wait", Version: version}, waitKind{})
}

type waitKind struct{}

// Info implements sdk.Kind.
func (waitKind) Info() sdk.KindInfo {
	return sdk.KindInfo{
		Name:        "http.wait",
		Description: "Poll an HTTP(S) URL from the runner until it returns the expected status and body.",
		Params: sdk.Object(sdk.Props{
			"url":      map[string]any{"type": "string", "pattern": "^https?://", "description": "URL to poll (http:// or https://)."},
			"status":   map[string]any{"type": []any{"integer", "string"}, "minimum": 100, "maximum": 599, "description": "Expected status code (default 200)."},
			"body":     sdk.String("Text the response body must contain."),
			"ca_file":  sdk.String("PEM CA bundle on the runner to verify HTTPS (e.g. the agent cluster CA)."),
			"timeout":  sdk.String("Give up after this long (default 60s)."),
			"interval": sdk.String("Delay between attempts (default 1s)."),
		}, "url"),
		Outputs:       []sdk.Output{{Name: "status"}, {Name: "attempts"}, {Name: "elapsed"}},
		Targets:       sdk.TargetsOptional,
		Idempotent:    true,
		SummaryParams: []string{"url", "status"},
	}
}

// Run implements sdk.Kind.
func (waitKind) Run(ctx context.Context, req *sdk.Request) (sdk.Result, error) {
	url, err := req.String("url")
	if err != nil {
		return sdk.Result{}, err
	}
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return sdk.Result{}, fmt.Errorf("%w: url must start with http:// or https://, got %q", sdk.ErrBadParams, url)
	}
	want, err := req.Int("status", http.StatusOK)
	if err != nil {
		return sdk.Result{}, err
	}
	body, err := req.String("body")
	if err != nil {
		return sdk.Result{}, err
	}
	timeout, err := req.Duration("timeout", time.Minute)
	if err != nil {
		return sdk.Result{}, err
	}
	interval, err := req.Duration("interval", time.Second)
	if err != nil {
		return sdk.Result{}, err
	}
	caFile, err := req.String("ca_file")
	if err != nil {
		return sdk.Result{}, err
	}
	client, err := newClient(caFile)
	if err != nil {
		return sdk.Result{}, err
	}
	defer client.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	last := "no attempt yet"
	for attempt := 1; ; attempt++ {
		code, text, err := get(ctx, client, url)
		switch {
		case err != nil && ctx.Err() != nil && attempt > 1:
			// The overall time limit cut this attempt short: the previous
			// attempt's answer says more than "deadline exceeded".
		case err != nil:
			last = err.Error()
		case code != want:
			last = fmt.Sprintf("status %d, want %d", code, want)
		case body != "" && !strings.Contains(text, body):
			last = fmt.Sprintf("status %d but the body lacks %q", code, body)
		default:
			el := time.Since(start).Round(time.Millisecond)
			fmt.Fprintf(req.Stdout, "%s answered %d after %d attempt(s) in %s\n", url, code, attempt, el)
			return sdk.Result{Outputs: map[string]string{"status": strconv.Itoa(code), "attempts": strconv.Itoa(attempt), "elapsed": el.String()}}, nil
		}
		fmt.Fprintf(req.Stdout, "attempt %d: %s\n", attempt, last)
		select {
		case <-ctx.Done():
			return sdk.Result{}, fmt.Errorf("%w: %s did not answer as expected within %s (last: %s)", sdk.ErrTimeout, url, timeout, last)
		case <-time.After(interval):
		}
	}
}

func newClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if caFile != "" {
		// The CA file the runbook author named for this step: a bundle is a
		// few hundred KiB at most; the cap holds for a device or FIFO too.
		pem, err := capread.ReadFile(caFile, 4<<20)
		if err != nil {
			return nil, fmt.Errorf("%w: ca_file: %w", sdk.ErrBadParams, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: ca_file %s holds no PEM certificate", sdk.ErrBadParams, caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil
}

// get fetches url and returns the status and up to 64 KiB of the body.
func get(ctx context.Context, c *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return resp.StatusCode, "", err
	}
	return resp.StatusCode, string(b), nil
}
