package store

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// benchSession is a session as the store keeps it: a Call Connect start that was sent (two
// events), or one with a longer history (resends, rejected codes).
func benchSession(events int) *callsession.Session {
	at := time.Date(2026, 11, 24, 18, 5, 0, 0, time.UTC)
	exp := at.Add(10 * time.Minute)
	s := &callsession.Session{
		ReferenceID: "CA0123456789abcdef0123456789abcdef", Provider: callsession.ProviderCallConnect,
		Channel: callsession.ChannelSMS, PhoneNumber: "+447400123456", Country: "GB",
		Status: callsession.StatusSent, MessageID: "msg_2f1c0d9e-6a7b-4c1d-9e8f-0123456789ab",
		MaxAttempts: 5, Sends: 1, ExpiresAt: &exp, CreatedAt: at, UpdatedAt: at,
		Fingerprint: "5d41402abc4b2a76b9719d911017c592",
	}
	for i := 0; i < events; i++ {
		typ := callsession.EventSent
		if i == 0 {
			typ = callsession.EventCreated
		}
		s.Events = append(s.Events, callsession.Event{At: at.Add(time.Duration(i) * time.Millisecond), Type: typ,
			Detail: "callconnect via SMS to +44••••••••56"})
	}
	return s
}

// BenchmarkSessionCodec is the store's codec beside encoding/json's, on the same session:
// lib=store is what every Create and Update runs.
func BenchmarkSessionCodec(b *testing.B) {
	codecs := []struct {
		name   string
		encode func(*callsession.Session) ([]byte, error)
		decode func([]byte) (*callsession.Session, error)
	}{
		{"std", func(s *callsession.Session) ([]byte, error) { return stdjson.Marshal(s) },
			func(d []byte) (*callsession.Session, error) {
				var s callsession.Session
				return &s, stdjson.Unmarshal(d, &s)
			}},
		{"store", encode, func(d []byte) (*callsession.Session, error) { return decode(string(d)) }},
	}
	for _, events := range []int{2, 10} {
		s := benchSession(events)
		data, err := encode(s)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range codecs {
			b.Run(fmt.Sprintf("encode/events=%d/lib=%s", events, c.name), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					if _, err := c.encode(s); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("decode/events=%d/lib=%s", events, c.name), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					if _, err := c.decode(data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// FuzzSessionCodec: the store writes byte for byte what encoding/json would (documents
// written before the codec changed, and tools that read Redis, see one format) and reads
// back what encoding/json reads, whatever the strings hold (HTML, U+2028, invalid UTF-8).
func FuzzSessionCodec(f *testing.F) {
	f.Add("CA1", "+447400123456", "<b>&amp;</b>", "ana@example.com", "en-GB", "msg_1", 3, int64(1764600000123456789))
	f.Add("ref\u2028x", "", "caf\xe9 \"quoted\" \\ \t\n", "", "", "", 0, int64(0))
	f.Add("r", "+1", "🙂 emoji • bullet", "a+b@x.y", "zh-Hant-TW", "chal-\x00", -1, int64(-62135596800000000))
	f.Fuzz(func(t *testing.T, ref, number, detail, email, locale, messageID string, attempts int, nanos int64) {
		at := time.Unix(0, nanos).UTC()
		s := benchSession(2)
		s.ReferenceID, s.PhoneNumber, s.Email, s.Locale, s.MessageID = ref, number, email, locale, messageID
		s.Attempts, s.CreatedAt, s.UpdatedAt = attempts, at, at.Add(time.Second)
		s.Events = append(s.Events, callsession.Event{At: at, Type: callsession.EventCodeRejected, Detail: detail})
		want, wantErr := stdjson.Marshal(s)
		got, err := encode(s)
		if (wantErr != nil) != (err != nil) {
			t.Fatalf("encoding/json error %v, store error %v", wantErr, err)
		}
		if wantErr != nil {
			return // a time outside years 0-9999: both refuse it
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("the store wrote\n%s\nencoding/json writes\n%s", got, want)
		}
		var std callsession.Session
		if err := stdjson.Unmarshal(want, &std); err != nil {
			t.Fatal(err)
		}
		read, err := decode(string(want))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(read, &std) {
			t.Fatalf("the store read\n%+v\nencoding/json reads\n%+v", read, &std)
		}
	})
}

// A stored session that cannot be read is a storage error whose text does not quote the
// data: it holds the caller's number, and the error is logged.
func TestCorruptSessionErrorQuotesNoData(t *testing.T) {
	for _, data := range []string{
		`{"phoneNumber":"+447400123456"`,                   // cut short
		`{"referenceId":"CA1","phoneNumber":447400123456}`, // a number where a string belongs
		`+447400123456`,
		`{"referenceId":"r" "phoneNumber":"+447400123456"}`, // a comma missing
	} {
		_, err := decode(data)
		if !errors.Is(err, callsession.ErrStorage) || strings.Contains(err.Error(), "7400123") {
			t.Errorf("%s: %v, want a storage error that does not quote the number", data, err)
		}
	}
}
