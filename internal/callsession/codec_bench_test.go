package callsession_test

import (
	"encoding/json"
	"fmt"
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

func BenchmarkSessionEncode(b *testing.B) {
	for _, events := range []int{2, 10} {
		s := benchSession(events)
		b.Run(fmt.Sprintf("events=%d", events), func(b *testing.B) {
			b.ReportAllocs()
			var n int
			for b.Loop() {
				data, err := json.Marshal(s)
				if err != nil {
					b.Fatal(err)
				}
				n = len(data)
			}
			b.ReportMetric(float64(n), "bytes/session")
		})
	}
}

func BenchmarkSessionDecode(b *testing.B) {
	for _, events := range []int{2, 10} {
		data, err := json.Marshal(benchSession(events))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("events=%d", events), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var s callsession.Session
				if err := json.Unmarshal(data, &s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
