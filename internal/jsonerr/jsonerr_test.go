package jsonerr_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	segjson "github.com/segmentio/encoding/json"

	"github.com/ivr-bridge/ivr-bridge/internal/jsonerr"
)

// Both decoders' errors are described without what they read; an error of the program's
// own passes as it is.
func TestDescribeLeavesTheInputOut(t *testing.T) {
	var out struct {
		Phone string `json:"phone"`
	}
	unmarshals := map[string]func([]byte, any) error{"encoding/json": json.Unmarshal, "segmentio": segjson.Unmarshal}
	for lib, unmarshal := range unmarshals {
		for input, want := range map[string]string{
			`code 123456 sent to +14155552671`: "not JSON",
			`{"phone":"+14155552671"`:          "not JSON",
			`{"phone":14155552671}`:            `field phone is not of type string`,
			`["+14155552671"]`:                 "a value is not of type struct",
		} {
			err := unmarshal([]byte(input), &out)
			if err == nil {
				t.Fatalf("%s: %s decoded", lib, input)
			}
			got := jsonerr.Describe(err).Error()
			if !strings.Contains(got, want) || strings.Contains(got, "5552671") || strings.Contains(got, "123456") {
				t.Errorf("%s: %s: %q, want %q and no digits of the input", lib, input, got, want)
			}
		}
	}
	// A map's key is the input's: not named.
	for lib, unmarshal := range unmarshals {
		var m map[string]int
		err := unmarshal([]byte(`{"+14155552671":"x"}`), &m)
		if got := jsonerr.Describe(err).Error(); strings.Contains(got, "5552671") || !strings.Contains(got, "not of type int") {
			t.Errorf("%s: %q", lib, got)
		}
	}
	own := errors.New("answer without messageId")
	if jsonerr.Describe(own) != own {
		t.Error("an error that is not a decoder's was changed")
	}
}
