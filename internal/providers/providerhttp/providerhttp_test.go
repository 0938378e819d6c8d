package providerhttp

import (
	"fmt"
	"strings"
	"testing"

	json "github.com/segmentio/encoding/json"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// TestMalformedDoesNotQuoteTheAnswer: a 2xx answer the client cannot read fails with the
// decoder's error, which quotes the answer; the error that is logged keeps its kind only
// (jsonerr), not the destination it quoted.
func TestMalformedDoesNotQuoteTheAnswer(t *testing.T) {
	var into struct {
		ID int `json:"id"`
	}
	for _, answer := range []string{
		`{"id": "+14155552671"}`,         // a value of the wrong type
		`{"id": 1 "to": "+14155552671"}`, // broken JSON, quoted from where it breaks
		`{"id": +14155552671}`,
	} {
		err := json.Unmarshal([]byte(answer), &into)
		if err == nil || !strings.Contains(err.Error(), "4155552671") {
			t.Fatalf("%s: the decoder's error %v does not quote the number: the test proves nothing", answer, err)
		}
		c := &Client{Provider: callsession.ProviderAuthentix}
		if got := c.Malformed(err).Error(); strings.Contains(got, "5552671") {
			t.Errorf("%s: %s", answer, got)
		}
	}
	// A client's own check quoting a value of the answer.
	c := &Client{Provider: callsession.ProviderAuthentix}
	if got := c.Malformed(fmt.Errorf("control status %q", "sent to +14155552671")).Error(); strings.Contains(got, "5552671") {
		t.Errorf("a check's error: %s", got)
	}
}
