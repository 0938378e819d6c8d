package authsignalapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/authsignal/authsignalapi"
)

func TestDecode(t *testing.T) {
	cases := []struct {
		name, body, wantCode, wantMsg string
	}{
		{"errorCode and description", `{"errorCode":"invalid_request","errorDescription":"action is required"}`, "invalid_request", "action is required"},
		{"code in error (Node SDK form)", `{"error":"unauthorized","errorDescription":"Invalid secret"}`, "unauthorized", "Invalid secret"},
		{"errorCode wins over error", `{"error":"invalid_request","errorCode":"invalid_phone_number"}`, "invalid_phone_number", ""},
		{"not JSON", `<html>502 Bad Gateway</html>`, "", ""},
		{"empty", ``, "", ""},
		{"other JSON", `{"message":"Internal server error"}`, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := authsignalapi.Decode(400, []byte(tc.body))
			if code != tc.wantCode || msg != tc.wantMsg {
				t.Errorf("got %q %q, want %q %q", code, msg, tc.wantCode, tc.wantMsg)
			}
		})
	}
}

// TestDescriptionIsMaskedBeforeItIsCut: a description quoting a number where the shown text
// is cut (at any byte of it, in ASCII or full-width digits) shows nothing of the number but
// its last digits, and no broken character. Cut before masking, what was left of the number
// no longer read as one and was shown as it was ("+1 41").
func TestDescriptionIsMaskedBeforeItIsCut(t *testing.T) {
	for _, number := range []string{"+1 415 555 2671", "＋１ ４１５ ５５５ ２６７１"} {
		for pad := 170; pad <= 200; pad++ {
			desc := strings.Repeat("x", pad) + " " + number + " is not a valid phone number"
			body, _ := json.Marshal(authsignalapi.Body{Error: "invalid_request", ErrorDescription: desc})
			code, msg := authsignalapi.Decode(400, body)
			shown := (&callsession.ProviderError{Provider: callsession.ProviderAuthsignal, Kind: callsession.ProviderRejected,
				Code: code, Message: msg}).Error()
			if !utf8.ValidString(shown) {
				t.Fatalf("padding %d: %q cuts a character", pad, shown)
			}
			if rest := maskedNumber.ReplaceAllString(shown, ""); strings.ContainsFunc(rest, unicode.IsDigit) {
				t.Fatalf("padding %d: %q shows digits of the number", pad, shown)
			}
		}
	}
}

// maskedNumber is a masked number as shown, perhaps cut: "***2671", "***26".
var maskedNumber = regexp.MustCompile(`\*\*\*[0-9]{0,4}`)

func TestRefine(t *testing.T) {
	cases := []struct {
		name     string
		kind     callsession.ProviderErrorKind
		code     string
		msg      string
		wantKind callsession.ProviderErrorKind
	}{
		{"invalid phone number", callsession.ProviderRejected, "invalid_request", "Invalid phone number", callsession.ProviderBadDestination},
		{"not E.164", callsession.ProviderRejected, "invalid_request", "phoneNumber must be in E.164 format", callsession.ProviderBadDestination},
		{"code says it", callsession.ProviderRejected, "invalid_phone_number", "", callsession.ProviderBadDestination},
		{"invalid email", callsession.ProviderRejected, "invalid_request", "Invalid email address", callsession.ProviderBadDestination},
		{"landline", callsession.ProviderRejected, "invalid_request", "The phone number is a landline", callsession.ProviderBadDestination},
		{"missing field is not a destination problem", callsession.ProviderRejected, "invalid_request", "phoneNumber is required", callsession.ProviderRejected},
		{"other invalid field", callsession.ProviderRejected, "invalid_request", "Invalid action", callsession.ProviderRejected},
		{"wrong secret", callsession.ProviderRejected, "unauthorized", "Invalid credentials", callsession.ProviderRejected},
		{"a 5xx stays unavailable", callsession.ProviderUnavailable, "", "Invalid phone number", callsession.ProviderUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := authsignalapi.Refine(&callsession.ProviderError{Kind: tc.kind, Code: tc.code, Message: tc.msg})
			var pe *callsession.ProviderError
			if !errors.As(err, &pe) || pe.Kind != tc.wantKind {
				t.Errorf("got %v, want kind %d", err, tc.wantKind)
			}
		})
	}
	plain := errors.New("not a provider error")
	if authsignalapi.Refine(plain) != plain {
		t.Error("Refine changed an error that is not a ProviderError")
	}
}

func TestEndpoint(t *testing.T) {
	cases := []struct {
		base, path, want string
		wantErr          bool
	}{
		{"https://api.authsignal.com/v1", "challenge", "https://api.authsignal.com/v1/challenge", false},
		{"https://api.authsignal.com/v1/", "verify", "https://api.authsignal.com/v1/verify", false},
		{"https://us-connect.authsignal.com", "call/start", "https://us-connect.authsignal.com/call/start", false},
		{"https://us-connect.authsignal.com/", "call/start", "https://us-connect.authsignal.com/call/start", false},
		{"http://127.0.0.1:8080/gw/cc//", "call/start", "http://127.0.0.1:8080/gw/cc/call/start", false},
		{"api.authsignal.com/v1", "challenge", "", true},
		{"ftp://api.authsignal.com", "challenge", "", true},
		{"http://[::1", "challenge", "", true},
	}
	for _, tc := range cases {
		got, err := authsignalapi.Endpoint(tc.base, tc.path)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("Endpoint(%q, %q) = %q, %v; want %q (error %v)", tc.base, tc.path, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestNewRequest(t *testing.T) {
	req, err := authsignalapi.NewRequest(context.Background(), "https://api.authsignal.com/v1/verify", "sk_test",
		map[string]string{"challengeId": "c", "verificationCode": "123456"})
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "POST" || req.URL.String() != "https://api.authsignal.com/v1/verify" {
		t.Errorf("%s %s", req.Method, req.URL)
	}
	if got, want := req.Header.Get("Authorization"), "Basic "+base64.StdEncoding.EncodeToString([]byte("sk_test:")); got != want {
		t.Errorf("Authorization %q, want %q", got, want)
	}
	if req.Header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q", req.Header.Get("Content-Type"))
	}
	body, _ := io.ReadAll(req.Body)
	if string(body) != `{"challengeId":"c","verificationCode":"123456"}` {
		t.Errorf("body %s", body)
	}
	if _, err := authsignalapi.NewRequest(context.Background(), "https://x", "s", func() {}); err == nil {
		t.Error("an unencodable body was accepted")
	}
}
