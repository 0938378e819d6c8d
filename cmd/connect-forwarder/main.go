// Command connect-forwarder is the AWS Lambda function an Amazon Connect contact flow
// invokes (the "Invoke AWS Lambda function" block, response validation STRING_MAP). It posts
// the contact-flow event, unchanged, to ivr-bridge's POST /v1/webhooks/connect and returns
// the bridge's flat answer, so the flow branches on $.External.step and $.External.error.
//
// Environment:
//
//	IVR_BRIDGE_URL   the bridge's base URL (https://ivr-bridge.example.com), or the full
//	                 endpoint URL
//	CONNECT_API_KEY  sent as X-Api-Key; the bridge's CONNECT_API_KEY
//
// Build for the provided.al2023 runtime: GOOS=linux GOARCH=arm64 go build -tags lambda.norpc
// -o bootstrap ./cmd/connect-forwarder
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ivr-bridge/ivr-bridge/internal/jsonerr"
)

// path is the bridge's Connect endpoint (connect.Path, tested equal). It is written out
// rather than imported so the Lambda binary stays small and starts fast.
const path = "/v1/webhooks/connect"

// timeout bounds the whole forward. Connect waits at most 8 s for a Lambda
// (InvocationTimeLimitSeconds ≤ 8), and the answer must reach the flow before that.
const timeout = 7 * time.Second

// maxAnswer bounds what is read of the bridge's answer; a flat map is a few hundred bytes.
const maxAnswer = 64 << 10

// ErrorUnavailable is the "error" of the answer when the bridge could not answer.
const ErrorUnavailable = "bridge_unavailable"

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	client := &http.Client{Timeout: timeout}
	lambda.Start(Handler(client, os.Getenv("IVR_BRIDGE_URL"), os.Getenv("CONNECT_API_KEY"), log))
}

// Handler is the Lambda function: it never returns an error, so a bridge that cannot be
// reached is a branch of the flow (error = bridge_unavailable), not the block's Error exit.
func Handler(client *http.Client, baseURL, apiKey string, log *slog.Logger) func(context.Context, json.RawMessage) (map[string]string, error) {
	url := EndpointURL(baseURL)
	return func(ctx context.Context, event json.RawMessage) (map[string]string, error) {
		if url == "" {
			log.ErrorContext(ctx, "IVR_BRIDGE_URL is not set")
			return unavailable("the verification service is not configured"), nil
		}
		ctx, cancel := deadline(ctx)
		defer cancel()
		out, err := Forward(ctx, client, url, apiKey, event)
		if err != nil {
			log.ErrorContext(ctx, "forwarding to ivr-bridge", "err", err)
		}
		return out, nil
	}
}

// deadline is the forward's deadline: timeout, and some room before the Lambda's own end
// so the answer is still written.
func deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	d := time.Now().Add(timeout)
	if end, ok := ctx.Deadline(); ok && end.Add(-250*time.Millisecond).Before(d) {
		d = end.Add(-250 * time.Millisecond)
	}
	return context.WithDeadline(ctx, d)
}

// EndpointURL makes the endpoint URL from IVR_BRIDGE_URL, which may be the base URL or
// the endpoint itself.
func EndpointURL(base string) string {
	base = strings.TrimRight(strings.TrimSpace(base), "/")
	if base == "" || strings.HasSuffix(base, path) {
		return base
	}
	return base + path
}

// Forward posts event as is to url and returns the bridge's flat answer. On any failure it
// returns a flat answer with error bridge_unavailable (and the reason in message, with the
// bridge's own error code when it gave one) along with the error, for the log.
func Forward(ctx context.Context, client *http.Client, url, apiKey string, event json.RawMessage) (map[string]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(event))
	if err != nil {
		return unavailable("the verification service address is not valid"), fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if apiKey != "" {
		req.Header.Set("X-Api-Key", apiKey)
	}
	resp, err := client.Do(req)
	if err != nil {
		msg := "the verification service could not be reached"
		if errors.Is(err, context.DeadlineExceeded) {
			msg = "the verification service did not answer in time"
		}
		return unavailable(msg), fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return unavailable("the verification service answer could not be read"), fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		// The bridge's refusals are {"error": {"code", "message"}} (DESIGN §7): keep its code
		// in the message, as it says what to fix (unauthorized: the API key).
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		msg := fmt.Sprintf("the verification service answered HTTP %d", resp.StatusCode)
		if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
			msg = fmt.Sprintf("%s: %s: %s", msg, e.Error.Code, e.Error.Message)
		}
		return unavailable(msg), errors.New(msg)
	}
	var out map[string]string
	if err := json.Unmarshal(body, &out); err != nil {
		return unavailable("the verification service answer is not a flat map"), fmt.Errorf("decoding the answer: %w", jsonerr.Describe(err))
	}
	if out == nil {
		return unavailable("the verification service answer is not a flat map"), errors.New("the answer is null")
	}
	return out, nil
}

func unavailable(msg string) map[string]string {
	return map[string]string{"step": "error", "error": ErrorUnavailable, "message": msg}
}
