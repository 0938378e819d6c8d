package callconnect

import (
	"bytes"
	stdjson "encoding/json"
	"testing"

	json "github.com/segmentio/encoding/json"
)

var (
	benchRequest = startRequest{ReferenceID: "CA0123456789abcdef0123456789abcdef", PhoneNumber: "+447400123456",
		Channel: "SMS", Locale: "en-GB", Email: "caller+ivr@example.com"}
	benchAnswer = []byte(`{"messageId":"0b8a4c2e-5f0d-4e43-9b1a-2f6d4c1e7a90","channel":"SMS"}`)
)

// The client encodes its requests with segmentio's drop-in: the bytes must be encoding/json's,
// which the provider's documentation and the fake are written against.
func TestRequestBytesAreEncodingJSONs(t *testing.T) {
	for _, r := range []startRequest{benchRequest, {ReferenceID: "<&>", PhoneNumber: "+1\u2028"}, {}} {
		ours, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		std, _ := stdjson.Marshal(r)
		if !bytes.Equal(ours, std) {
			t.Fatalf("segmentio %s, encoding/json %s", ours, std)
		}
	}
}

// BenchmarkWireCodec: one start's request encoded and answer decoded, by each library
// (the provider call's JSON was 4 % of a start's request path in the load profile).
func BenchmarkWireCodec(b *testing.B) {
	for _, c := range []struct {
		name      string
		marshal   func(any) ([]byte, error)
		unmarshal func([]byte, any) error
	}{
		{"encoding-json", stdjson.Marshal, stdjson.Unmarshal},
		{"segmentio", json.Marshal, json.Unmarshal},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.marshal(benchRequest); err != nil {
					b.Fatal(err)
				}
				var a startAnswer
				if err := c.unmarshal(benchAnswer, &a); err != nil || a.MessageID == "" {
					b.Fatal(err)
				}
			}
		})
	}
}
